package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mastfs/ftps/ftpstest"
	"mastfs/ftps/ftpstest/netproxy"
	"mastfs/ftps/stagegen"
)

// Network faults between a real mount and vsftpd, injected by the proxy.
// For each: reads give the server's bytes after a retry, or EIO within a
// bound, never wrong bytes and never a freeze; what is cached, listings
// included, keeps being served; the descriptors the mount holds stay
// within what its pool allows.

// bulk adds n files of size random bytes to the stage's bulk directory
// and returns their digests by name.
func bulk(t *testing.T, st *stagegen.Stage, n int, size int) map[string]string {
	t.Helper()
	dir := filepath.Join(st.Root, stagegen.AnonDir, "bulk")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	buf := make([]byte, size)
	for i := range n {
		name := fmt.Sprintf("file%02d.bin", i)
		rand.Read(buf)
		if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(buf)
		sums[name] = hex.EncodeToString(h[:])
	}
	return sums
}

// TestNetworkFaults runs the faults one after the other on one mount with
// a 1 s step timeout and a 2 s listing TTL.
func TestNetworkFaults(t *testing.T) {
	const timeout = time.Second
	// Without retries every attempt times out: 4 attempts and the backoff
	// between them, plus a fresh stream for a read that broke midway.
	const failBound = 5*timeout + 3*time.Second + 5*time.Second
	s, p := proxiedStage(t, netproxy.Config{})
	sums := bulk(t, s.Stage, 8, 6<<20)
	m := mountBehindProxy(t, s, "--remote-dir", "/"+stagegen.AnonDir, "--timeout", timeout.String(),
		"--max-conns", "4", "--dir-cache-ttl", "2s")
	bulkDir := filepath.Join(m.dir, "bulk")
	file := func(i int) string { return filepath.Join(bulkDir, fmt.Sprintf("file%02d.bin", i)) }
	want := func(i int) string { return sums[fmt.Sprintf("file%02d.bin", i)] }
	if got := sha(t, file(0)); got != want(0) {
		t.Fatal("first read differs")
	}
	rest := restFDs(t, m)
	many := len(s.Stage.Children(stagegen.ManyDir))

	t.Run("control cut mid-listing", func(t *testing.T) {
		p.SetDelay(50 * time.Millisecond)
		defer p.SetDelay(0)
		type result struct {
			n   int
			err error
		}
		done := make(chan result, 1)
		before := p.Stats().ToClient
		go func() {
			ents, err := os.ReadDir(filepath.Join(m.dir, "many"))
			done <- result{len(ents), err}
		}()
		// Idle connections hold a data connection made ahead: wait for the
		// listing's bytes, more than control replies come to.
		for deadline := time.Now().Add(20 * time.Second); p.Stats().ToClient-before < 8<<10; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the listing never started")
			}
		}
		p.CutPort(s.Port)
		r := <-done
		if r.err != nil || r.n != many {
			t.Fatalf("listing with its control connection cut: %d entries, %v; want %d", r.n, r.err, many)
		}
		fdBudget(t, m, rest, 4)
	})

	t.Run("data cut mid-transfer", func(t *testing.T) {
		if _, err := os.Stat(file(1)); err != nil { // listed before the cut is armed
			t.Fatal(err)
		}
		cuts := func() int {
			log := m.log(t)
			return strings.Count(log, "remote stream broke") + strings.Count(log, "connection dropped after transfer")
		}
		before := cuts()
		p.CutFirstAfter(2 << 20)
		if got := sha(t, file(1)); got != want(1) {
			t.Fatal("read across a cut data connection differs")
		}
		// The cut stream was the reader's own (it opened a fresh one) or
		// one reading ahead of it (dropped; the reader fetched anew).
		for deadline := time.Now().Add(30 * time.Second); cuts() == before; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no cut stream in the log:\n%s", lastLogLines(m.log(t), 20))
			}
		}
		fdBudget(t, m, rest, 4)
	})

	t.Run("slow server", func(t *testing.T) {
		p.SetDelay(40 * time.Millisecond)
		defer p.SetDelay(0)
		start := time.Now()
		if got := sha(t, file(2)); got != want(2) {
			t.Fatal("read through a slow path differs")
		}
		if _, err := os.ReadDir(filepath.Join(m.dir, "nested")); err != nil {
			t.Fatal(err)
		}
		t.Logf("6 MiB and a listing over an 80 ms round trip: %v", time.Since(start).Round(time.Millisecond))
		fdBudget(t, m, rest, 4)
	})

	t.Run("stall past the timeout", func(t *testing.T) {
		p.Stall(true)
		defer p.Stall(false)
		took, err := timed(t, "read on a stalled server", failBound+20*time.Second, func() error {
			_, err := os.ReadFile(file(3))
			return err
		})
		if !isEIO(err) || took > failBound {
			t.Errorf("read on a stalled server: %v after %v; want EIO within %v", err, took, failBound)
		}
		t.Logf("first read on a stalled server: EIO after %v", took.Round(time.Millisecond))
		checkOffline(t, m, file(0), want(0), file(4), 2*timeout+2*time.Second)
	})
	t.Run("after the stall", func(t *testing.T) {
		if got := sha(t, file(3)); got != want(3) {
			t.Fatal("read once the server answers again differs")
		}
		fdBudget(t, m, rest, 4)
	})

	t.Run("server down", func(t *testing.T) {
		p.Down(true)
		defer p.Down(false)
		took, err := timed(t, "read on a server that is down", 30*time.Second, func() error {
			_, err := os.ReadFile(file(4))
			return err
		})
		if !isEIO(err) || took > 5*time.Second {
			t.Errorf("read on a server that is down: %v after %v; want EIO within 5s", err, took)
		}
		checkOffline(t, m, file(1), want(1), file(5), 2*time.Second)
	})

	t.Run("server restarted", func(t *testing.T) {
		// Fill the pool, then restart the server under it.
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() { sha(t, file(4+i)) })
		}
		wg.Wait()
		s.Restart(t)
		if got := sha(t, file(7)); got != want(7) {
			t.Fatal("read after the server restarted differs")
		}
		if _, err := os.ReadDir(filepath.Join(m.dir, "nested", "deeper")); err != nil {
			t.Fatalf("listing after the server restarted: %v", err)
		}
		fdBudget(t, m, rest, 4)
	})

	if !m.alive() {
		t.Fatalf("mastfs died\n%s", m.log(t))
	}
	log := m.log(t)
	for _, want := range []string{"server unreachable", "serving the listing kept on disk", "server answers again"} {
		if !strings.Contains(log, want) {
			t.Errorf("log has no %q", want)
		}
	}
}

// checkOffline checks, on a mount whose server does not answer, that a
// cached file is served right: within bound the first time (each expired
// listing on its path waits for one attempt at the server, then its kept
// copy is served) and at once after; that cached listings are served
// (after their TTL, the copy kept on disk); and that an uncached file
// gives EIO within bound.
func checkOffline(t *testing.T, m *mount, cached, cachedSum, uncached string, bound time.Duration) {
	t.Helper()
	// The second read must not wait for the server: one attempt would
	// cost the mount's 1 s step timeout on its own.
	for i, limit := range []time.Duration{bound, time.Second} {
		took, err := timed(t, "cached read while offline", bound+20*time.Second, func() error {
			dropPages(t, cached) // from mastfs, not from the kernel's page cache
			if got := sha(t, cached); got != cachedSum {
				return fmt.Errorf("cached file read wrong while offline")
			}
			return nil
		})
		if err != nil || took > limit {
			t.Errorf("cached file while offline, read %d: %v after %v; want it within %v", i+1, err, took, limit)
		}
	}
	time.Sleep(2500 * time.Millisecond) // past the listing TTL
	for _, dir := range []string{m.dir, filepath.Dir(cached), filepath.Join(m.dir, "many")} {
		took, err := timed(t, "listing while offline", bound+20*time.Second, func() error {
			_, err := os.ReadDir(dir)
			return err
		})
		if err != nil || took > bound {
			t.Errorf("listing %s while offline: %v after %v; want it from the cache within %v", dir, err, took, bound)
		}
	}
	if _, err := os.Stat(cached); err != nil {
		t.Errorf("stat of a cached file while offline: %v", err)
	}
	took, err := timed(t, "uncached read while offline", bound+20*time.Second, func() error {
		_, err := os.ReadFile(uncached)
		return err
	})
	if !isEIO(err) || took > bound {
		t.Errorf("uncached read while offline: %v after %v; want EIO within %v", err, took, bound)
	}
}

// TestMountWhileServerDown: a mount started while its server is stopped
// serves what the cache holds, listings included, and EIO for the rest;
// once the server is back, everything.
func TestMountWhileServerDown(t *testing.T) {
	s, _ := proxiedStage(t, netproxy.Config{})
	m := mountBehindProxy(t, s, "--remote-dir", "/"+stagegen.AnonDir, "--timeout", "2s")
	hst, _ := s.Stage.Lookup(stagegen.HSTFile)
	large, _ := s.Stage.Lookup(stagegen.LargeFile)
	hstPath := filepath.Join(m.dir, path.Base(stagegen.HSTFile))
	if got := sha(t, hstPath); got != hst.SHA256 {
		t.Fatal("first read differs")
	}
	if _, err := os.ReadDir(filepath.Join(m.dir, "large")); err != nil {
		t.Fatal(err)
	}
	if err := m.stop(t); err != nil {
		t.Fatal(err)
	}

	s.Stop()
	m2 := m.remount(t, "--remote-dir", "/"+stagegen.AnonDir, "--timeout", "2s")
	ents, err := os.ReadDir(m2.dir)
	if err != nil || len(ents) == 0 {
		t.Fatalf("root listing with the server down: %d entries, %v", len(ents), err)
	}
	if got := sha(t, hstPath); got != hst.SHA256 {
		t.Fatal("cached file read with the server down differs")
	}
	st, err := os.Stat(filepath.Join(m2.dir, "large", "large.fits"))
	if err != nil || st.Size() != large.Size {
		t.Fatalf("stat from a kept listing: %v, %v", st, err)
	}
	took, err := timed(t, "uncached read with the server down", time.Minute, func() error {
		_, err := os.ReadFile(filepath.Join(m2.dir, "large", "large.fits"))
		return err
	})
	if !isEIO(err) || took > 5*time.Second {
		t.Errorf("uncached read with the server down: %v after %v; want EIO within 5s", err, took)
	}
	if _, err := os.ReadDir(filepath.Join(m2.dir, "nested")); !isEIO(err) {
		t.Errorf("listing never cached, server down: %v, want EIO", err)
	}

	s.Restart(t)
	if got := sha(t, filepath.Join(m2.dir, "large", "large.fits")); got != large.SHA256 {
		t.Fatal("read once the server is back differs")
	}
}

// TestTooManyConnectionsMount: a server that takes two connections per
// address, under a mount allowed four and eight readers: the pool shrinks
// to what the server accepts and every read is whole.
func TestTooManyConnectionsMount(t *testing.T) {
	st := ftpstest.NewStage(t, stagegen.StageOptions{LargeSize: 8 << 20, ManyFiles: -1})
	sums := bulk(t, st, 8, 3<<20)
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: st, MaxPerIP: 2})
	m := startMount(t, s, "", "--remote-dir", "/"+stagegen.AnonDir, "--max-conns", "4")
	start := time.Now()
	var wg sync.WaitGroup
	for name, want := range sums {
		wg.Go(func() {
			if got := sha(t, filepath.Join(m.dir, "bulk", name)); got != want {
				t.Errorf("%s differs", name)
			}
		})
	}
	wg.Wait()
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("24 MiB took %v: connections held while others wait for them?", took)
	}
	m.waitLog(t, "pool shrunk", 30*time.Second)
	fdBudget(t, m, restFDs(t, m), 4)
}
