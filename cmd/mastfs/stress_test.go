//go:build stress

package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// The load test (make stress): 32 readers for a minute through one mount
// with a pool of 4 connections and a cache smaller than what they read, so
// that chunks are evicted and fetched again all along. Sequential readers
// check whole files against their digests, random readers check ranges
// against the stage's own bytes, small-file readers and listers run
// beside them. No reader may fail or stall; memory must stay bounded.
// MASTFS_STRESS_DURATION overrides the minute.

// procStatus reads a field of /proc/PID/status, in KiB.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func TestLoad32Readers(t *testing.T) {
	duration := time.Minute
	if d, err := time.ParseDuration(os.Getenv("MASTFS_STRESS_DURATION")); err == nil {
		duration = d
	}
	st := ftpstest.NewStage(t, stagegen.StageOptions{LargeSize: 64 << 20, ManyFiles: 300})
	sums := bulk(t, st, 16, 8<<20)
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: st, PasvPorts: 60})
	m := startMount(t, s, "", "--remote-dir", "/"+stagegen.AnonDir, "--max-conns", "4",
		"--cache-size", "96MiB", "--chunk-size", "1MiB", "--log-level", "info")
	pid := m.cmd.Process.Pid
	var names []string
	for name := range sums {
		names = append(names, name)
	}
	var small []*stagegen.File
	for _, f := range st.Children(stagegen.ManyDir) {
		small = append(small, f)
	}
	large, _ := st.Lookup(stagegen.LargeFile)
	localLarge, err := os.ReadFile(st.Local(stagegen.LargeFile))
	if err != nil {
		t.Fatal(err)
	}

	var (
		bytesRead, ops atomic.Int64
		progress       [32]atomic.Int64 // last progress of each reader, unix nanoseconds
		errMu          sync.Mutex
		errs           []string
	)
	fail := func(format string, args ...any) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(errs) < 20 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	stop := time.Now().Add(duration)
	reader := func(id int, work func(r *rand.Rand) error) {
		r := rand.New(rand.NewPCG(uint64(id), 7))
		for time.Now().Before(stop) {
			if err := work(r); err != nil {
				fail("reader %d: %v", id, err)
				return
			}
			ops.Add(1)
			progress[id].Store(time.Now().UnixNano())
		}
	}
	sequential := func(r *rand.Rand) error {
		name := names[r.IntN(len(names))]
		p := filepath.Join(m.dir, "bulk", name)
		if got := sha(t, p); got != sums[name] {
			return fmt.Errorf("%s: wrong bytes", name)
		}
		bytesRead.Add(8 << 20)
		dropPages(t, p)
		return nil
	}
	random := func(r *rand.Rand) error {
		p := filepath.Join(m.dir, "large", "large.fits")
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n := 4<<10 + r.IntN(1<<20)
		off := r.Int64N(large.Size - int64(n))
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, off); err != nil {
			return fmt.Errorf("read %d at %d: %w", n, off, err)
		}
		if !bytes.Equal(buf, localLarge[off:off+int64(n)]) {
			return fmt.Errorf("large.fits: wrong bytes at %d", off)
		}
		bytesRead.Add(int64(n))
		const fadvDontNeed = 4
		syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), uintptr(off), uintptr(n), fadvDontNeed, 0, 0)
		return nil
	}
	smallFiles := func(r *rand.Rand) error {
		f := small[r.IntN(len(small))]
		p := filepath.Join(m.dir, "many", path.Base(f.Path))
		if got := sha(t, p); got != f.SHA256 {
			return fmt.Errorf("%s: wrong bytes", f.Path)
		}
		bytesRead.Add(f.Size)
		return nil
	}
	lister := func(r *rand.Rand) error {
		dirs := []string{m.dir, filepath.Join(m.dir, "many"), filepath.Join(m.dir, "bulk"), filepath.Join(m.dir, "nested", "deeper")}
		ents, err := os.ReadDir(dirs[r.IntN(len(dirs))])
		if err != nil {
			return err
		}
		for _, e := range ents[:min(len(ents), 20)] {
			if _, err := e.Info(); err != nil {
				return err
			}
		}
		time.Sleep(10 * time.Millisecond)
		return nil
	}

	if got := sha(t, filepath.Join(m.dir, "bulk", names[0])); got != sums[names[0]] {
		t.Fatal("first read differs")
	}
	rest := restFDs(t, m)
	start := time.Now()
	for i := range progress {
		progress[i].Store(start.UnixNano())
	}
	var wg sync.WaitGroup
	for id := range 32 {
		work := sequential
		switch {
		case id >= 16 && id < 24:
			work = random
		case id >= 24 && id < 28:
			work = smallFiles
		case id >= 28:
			work = lister
		}
		wg.Go(func() { reader(id, work) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var peakRSS int64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
watch:
	for {
		select {
		case <-done:
			break watch
		case <-tick.C:
		}
		peakRSS = max(peakRSS, procStatus(t, pid, "VmRSS"))
		for id := range progress {
			if last := time.Unix(0, progress[id].Load()); time.Since(last) > time.Minute {
				_ = m.cmd.Process.Signal(syscall.SIGQUIT) // its goroutines, into the output file
				time.Sleep(time.Second)
				t.Fatalf("reader %d made no progress for a minute: deadlock?\n%s", id, lastLogLines(m.log(t), 200))
			}
		}
	}
	took := time.Since(start)
	hwm := procStatus(t, pid, "VmHWM")
	sent := settledSent(t, s)
	mib := float64(bytesRead.Load()) / (1 << 20)
	t.Logf("load: 32 readers, %v: %d operations, %.0f MiB read (%.1f MiB/s), server sent %.0f MiB; "+
		"mastfs peak RSS %.1f MiB (VmHWM), highest sampled VmRSS %.1f MiB",
		took.Round(time.Millisecond), ops.Load(), mib, mib/took.Seconds(), float64(sent)/(1<<20),
		float64(hwm)/1024, float64(peakRSS)/1024)
	for _, e := range errs {
		t.Error(e)
	}
	if hwm > 512<<10 {
		t.Errorf("mastfs peak RSS %d KiB: memory not bounded", hwm)
	}
	fdBudget(t, m, rest, 4)
	if strings.Contains(m.log(t), "level=ERROR") {
		t.Errorf("errors logged:\n%s", lastLogLines(m.log(t), 30))
	}
}
