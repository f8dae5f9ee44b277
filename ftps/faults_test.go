package ftps_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"mastfs/ftps"
	"mastfs/ftps/ftpstest"
	"mastfs/ftps/ftpstest/netproxy"
	"mastfs/ftps/stagegen"
)

// Faults injected between a client and vsftpd by the proxy. Each test
// checks that the client answers right or fails within a bound, and that
// once closed it leaves no goroutine and no file descriptor behind.

// proxied starts vsftpd behind a fault proxy and returns a client that
// reaches it through the proxy, verifying its certificate there.
func proxied(t *testing.T, st *stagegen.Stage, pc netproxy.Config, tune func(*ftps.Config)) (*ftpstest.Server, *netproxy.Proxy, func() *ftps.Client) {
	t.Helper()
	s, p := ftpstest.StartBehindProxy(t, ftpstest.Options{Stage: st}, pc)
	return s, p, func() *ftps.Client {
		return clientFor(t, s, false, func(c *ftps.Config) {
			c.Host = ftpstest.ProxyHost
			if tune != nil {
				tune(c)
			}
		})
	}
}

// leakCheck records the goroutines and descriptors of this process now;
// the returned function fails the test unless they come back to that
// within 30 s (closing connections takes a moment, longer on a loaded
// machine).
func leakCheck(t *testing.T) func() {
	t.Helper()
	g0, fd0 := runtime.NumGoroutine(), openFDs(t)
	return func() {
		t.Helper()
		var g, fd int
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if g, fd = runtime.NumGoroutine(), openFDs(t); g <= g0 && fd <= fd0 {
				return
			}
		}
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("leak: %d goroutines (was %d), %d fds (was %d)\n%s", g, g0, fd, fd0, buf)
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// within runs f and fails the test if it takes longer than limit, or does
// not return at all (a freeze) within limit plus a grace period.
func within(t *testing.T, what string, limit time.Duration, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f() }()
	select {
	case err := <-done:
		if took := time.Since(start); took > limit {
			t.Errorf("%s took %v, want at most %v (err %v)", what, took.Round(time.Millisecond), limit, err)
		}
		return err
	case <-time.After(limit + 20*time.Second):
		t.Fatalf("%s froze: no answer after %v", what, limit+20*time.Second)
		return nil
	}
}

// failBound is the longest an operation may take against a server that
// answers nothing: every attempt times out, with the backoff in between.
func failBound(timeout time.Duration) time.Duration {
	const retries = 3 // the default
	return time.Duration(retries+1)*timeout + 2600*time.Millisecond + 2*time.Second
}

// faultStage is a stage for the fault tests: a small large file, and a
// directory whose listing takes a while through a narrow window.
func faultStage(t *testing.T) *stagegen.Stage {
	return ftpstest.NewStage(t, stagegen.StageOptions{LargeSize: 8 << 20, ManyFiles: 2000})
}

// TestStallBounded: a server that stops sending anything, on connections
// already open and on new ones, costs each operation at most its retries'
// timeouts; once it answers again, so does the client.
func TestStallBounded(t *testing.T) {
	const timeout = 500 * time.Millisecond
	s, p, newClient := proxied(t, faultStage(t), netproxy.Config{}, func(c *ftps.Config) { c.Timeout = timeout })
	leaks := leakCheck(t)
	c := newClient()
	dir := "/" + stagegen.AnonDir
	if _, err := c.List(ctx(t), dir); err != nil {
		t.Fatal(err)
	}

	// A stream that stalls midway fails within one timeout.
	rc, err := c.ReadAt(ctx(t), "/"+stagegen.LargeFile, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, rc, 1<<20); err != nil {
		t.Fatal(err)
	}
	p.Stall(true)
	err = within(t, "read from a stalled stream", 2*timeout+time.Second, func() error {
		_, err := io.Copy(io.Discard, rc)
		return err
	})
	if err == nil {
		t.Fatal("a stalled stream read to its end")
	}
	within(t, "close of a stalled stream", 3*time.Second, rc.Close)

	// Connections open and new: the idle one times out, every new one
	// gets no greeting.
	err = within(t, "list on a stalled server", failBound(timeout), func() error {
		_, err := c.List(ctx(t), dir)
		return err
	})
	if err == nil {
		t.Fatal("list succeeded on a stalled server")
	}
	t.Logf("stalled: %v", err)
	// Known unreachable now: the next operation tries once.
	err = within(t, "second list on a stalled server", timeout+time.Second, func() error {
		_, err := c.List(ctx(t), dir)
		return err
	})
	if err == nil {
		t.Fatal("list succeeded on a stalled server")
	}

	p.Stall(false)
	want, _ := s.Stage.Lookup(stagegen.HSTFile)
	if got := readAll(t, c, "/"+stagegen.HSTFile, 0); int64(len(got)) != want.Size || sum(got) != want.SHA256 {
		t.Fatalf("after the stall: %d bytes, digest match %v", len(got), sum(got) == want.SHA256)
	}
	c.Close()
	leaks()
}

// TestRestartUnderPool: after a server restart every pooled connection is
// dead; the next operations find that out and work on fresh ones, without
// failing.
func TestRestartUnderPool(t *testing.T) {
	s, _, newClient := proxied(t, faultStage(t), netproxy.Config{}, func(c *ftps.Config) { c.MaxConns = 4 })
	leaks := leakCheck(t)
	c := newClient()
	// Four streams at once leave four idle connections.
	var streams []io.ReadCloser
	for i := range 4 {
		rc, err := c.ReadAt(ctx(t), "/"+stagegen.LargeFile, int64(i)<<20)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, rc)
	}
	for _, rc := range streams {
		if _, err := io.CopyN(io.Discard, rc, 64<<10); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	if st := c.Stats(); st.Open != 4 {
		t.Fatalf("%d connections open, want 4 idle", st.Open)
	}
	s.Restart(t)
	want, _ := s.Stage.Lookup(stagegen.HSTFile)
	for i := range 3 {
		if got := readAll(t, c, "/"+stagegen.HSTFile, 0); sum(got) != want.SHA256 {
			t.Fatalf("read %d after restart: wrong bytes", i)
		}
		if _, err := c.List(ctx(t), "/"+stagegen.AnonDir); err != nil {
			t.Fatalf("list %d after restart: %v", i, err)
		}
	}
	t.Logf("stats after restart: %+v", c.Stats())
	c.Close()
	leaks()
}

// TestDataCutMidTransfer: a data connection reset midway gives an error on
// the stream, never wrong or missing bytes passed off as the end; the
// connection is dropped and the next read is whole.
func TestDataCutMidTransfer(t *testing.T) {
	s, p, newClient := proxied(t, faultStage(t), netproxy.Config{}, nil)
	leaks := leakCheck(t)
	c := newClient()
	local, err := os.ReadFile(s.Stage.Local(stagegen.LargeFile))
	if err != nil {
		t.Fatal(err)
	}
	p.CutFirstAfter(2 << 20)
	rc, err := c.ReadAt(ctx(t), "/"+stagegen.LargeFile, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err == nil || len(got) >= len(local) {
		t.Fatalf("cut transfer: %d bytes, err %v; want an error before the end", len(got), err)
	}
	if !bytes.Equal(got, local[:len(got)]) {
		t.Fatal("bytes before the cut differ")
	}
	t.Logf("cut after %d bytes: %v", len(got), err)
	rest := readAll(t, c, "/"+stagegen.LargeFile, int64(len(got)))
	if !bytes.Equal(rest, local[len(got):]) {
		t.Fatal("read resumed after the cut differs")
	}
	if st := c.Stats(); st.Discarded < 1 {
		t.Errorf("stats %+v: the cut connection was not dropped", st)
	}
	c.Close()
	leaks()
}

// TestControlCutMidListing: the control connection reset while a listing
// is on its way over the data connection; the listing is retried on a
// fresh connection and comes back whole.
func TestControlCutMidListing(t *testing.T) {
	// A small window over a short delay makes the 2,000-entry listing take
	// a few hundred milliseconds.
	s, p, newClient := proxied(t, faultStage(t), netproxy.Config{Delay: 5 * time.Millisecond, Window: 4 << 10}, nil)
	leaks := leakCheck(t)
	c := newClient()
	dir := "/" + stagegen.ManyDir
	if _, err := c.List(ctx(t), "/"); err != nil { // connected and logged in
		t.Fatal(err)
	}
	// Back in the pool, with its next data connection made.
	for deadline := time.Now().Add(30 * time.Second); c.Stats().Busy > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the connection never came back to the pool")
		}
	}
	before := c.Stats().BytesRead
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		ents, err := c.List(ctx(t), dir)
		done <- result{len(ents), err}
	}()
	for deadline := time.Now().Add(30 * time.Second); c.Stats().BytesRead == before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the listing never started")
		}
	}
	p.CutPort(s.Port)
	r := <-done
	if want := len(s.Stage.Children(stagegen.ManyDir)); r.err != nil || r.n != want {
		t.Fatalf("listing after the control cut: %d entries, %v; want %d", r.n, r.err, want)
	}
	if st := c.Stats(); st.Retries < 1 || st.Discarded < 1 {
		t.Errorf("stats %+v: the cut went unnoticed", st)
	}
	c.Close()
	leaks()
}

// TestDownFailsFast: a server that resets every connection (gone, or a
// proxy in front of it gone) fails operations within the retries' backoff,
// with no timeout to wait for.
func TestDownFailsFast(t *testing.T) {
	_, p, newClient := proxied(t, faultStage(t), netproxy.Config{}, nil)
	leaks := leakCheck(t)
	c := newClient()
	if _, err := c.List(ctx(t), "/"); err != nil {
		t.Fatal(err)
	}
	p.Down(true)
	err := within(t, "list on a server that is down", 5*time.Second, func() error {
		_, err := c.List(ctx(t), "/"+stagegen.AnonDir)
		return err
	})
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("list on a server that is down: %v", err)
	}
	for i := range 5 {
		err := within(t, "list on a server known to be down", 500*time.Millisecond, func() error {
			_, err := c.ReadAt(ctx(t), "/"+stagegen.HSTFile, 0)
			return err
		})
		if err == nil {
			t.Fatalf("read %d on a server that is down succeeded", i)
		}
	}
	p.Down(false)
	if _, err := c.List(ctx(t), "/"+stagegen.AnonDir); err != nil {
		t.Fatalf("list once the server is back: %v", err)
	}
	c.Close()
	leaks()
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestWarmUnderConnectionCap: logging the pool in at once against a server
// that takes two connections per address returns at once, and holds no
// connection back from the operations that follow.
func TestWarmUnderConnectionCap(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{MaxPerIP: 2, Stage: faultStage(t)})
	leaks := leakCheck(t)
	c := clientFor(t, s, false, func(c *ftps.Config) { c.MaxConns = 4 })
	err := within(t, "warming a pool the server caps", 5*time.Second, func() error {
		return c.Warm(ctx(t), 4)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Dials in flight count when a 421 comes, so the limit may settle
	// below the server's cap until it regrows; never above it.
	if st := c.Stats(); st.Open < 1 || st.Busy != 0 || st.Limit > 2 {
		t.Fatalf("after warming: %+v; want idle connections, none busy, a limit of at most 2", st)
	}
	within(t, "reads after warming", 10*time.Second, func() error {
		errs := make(chan error, 4)
		for i := range 4 {
			go func() {
				_, err := c.List(ctx(t), "/"+stagegen.AnonDir)
				if err == nil {
					var rc io.ReadCloser
					if rc, err = c.ReadAt(ctx(t), "/"+stagegen.HSTFile, int64(i)); err == nil {
						_, err = io.Copy(io.Discard, rc)
						rc.Close()
					}
				}
				errs <- err
			}()
		}
		for range 4 {
			if err := <-errs; err != nil {
				return err
			}
		}
		return nil
	})
	c.Close()
	leaks()
}
