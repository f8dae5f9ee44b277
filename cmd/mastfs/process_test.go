package main

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mastfs/cache"
	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// Faults of the mastfs process and of its cache's disk.

// cachedChunks returns how many chunks the cache in cacheDir holds.
func cachedChunks(t *testing.T, cacheDir string) int {
	t.Helper()
	files, err := cache.Inventory(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		n += f.Chunks
	}
	return n
}

// dataFiles lists the data files in a cache directory, one per cached
// file, the one taking the most disk first.
func dataFiles(t *testing.T, cacheDir string) []string {
	t.Helper()
	var out []string
	used := map[string]int64{}
	_ = filepath.WalkDir(cacheDir, func(p string, d iofs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasSuffix(p, ".data") {
			if info, err := d.Info(); err == nil {
				out = append(out, p)
				used[p] = info.Sys().(*syscall.Stat_t).Blocks
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return used[out[i]] > used[out[j]] })
	return out
}

// TestKillDuringReadsThenRemount: mastfs killed with SIGKILL under eight
// readers leaves a dead mount ("transport endpoint is not connected") and a
// cache written up to some point; the readers get an error, not a hang.
// Damage on top (a flipped byte, a truncated chunk, a half-written file)
// changes nothing: the next mastfs mount on the same mount point clears
// the dead mount, repairs the cache, and every byte read is the server's.
func TestKillDuringReadsThenRemount(t *testing.T) {
	st := ftpstest.NewStage(t, stagegen.StageOptions{LargeSize: 32 << 20, ManyFiles: -1})
	sums := bulk(t, st, 7, 8<<20)
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: st})
	large, _ := st.Lookup(stagegen.LargeFile)
	sums["../large/large.fits"] = large.SHA256
	args := []string{"--remote-dir", "/" + stagegen.AnonDir, "--chunk-size", "256KiB"}
	m := startMount(t, s, "", args...)

	var wg sync.WaitGroup
	errs := make(chan error, len(sums))
	for name := range sums {
		wg.Go(func() {
			f, err := os.Open(filepath.Join(m.dir, "bulk", name))
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			_, err = io.Copy(io.Discard, f)
			errs <- err
		})
	}
	// Kill once several files hold chunks: the damage below needs three.
	for deadline := time.Now().Add(20 * time.Second); cachedChunks(t, m.cacheDir) < 20 || len(dataFiles(t, m.cacheDir)) < 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 20s of reading, %d chunks of %d files cached", cachedChunks(t, m.cacheDir), len(dataFiles(t, m.cacheDir)))
		}
	}
	if err := m.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("readers still blocked 20s after mastfs was killed")
	}
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
		}
	}
	t.Logf("%d of %d readers cut off by the kill", failed, len(sums))
	<-m.done
	m.done <- nil
	if _, err := os.Stat(m.dir); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("after SIGKILL, stat of the mount point: %v, want ENOTCONN", err)
	}

	chunks := dataFiles(t, m.cacheDir) // the first, most cached, surely holds its chunk 0
	if len(chunks) < 3 {
		t.Fatalf("only %d files cached", len(chunks))
	}
	flip, err := os.OpenFile(chunks[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	flip.ReadAt(b, 1000)
	b[0] ^= 0xff
	flip.WriteAt(b, 1000)
	flip.Close()
	if err := os.Truncate(chunks[1], 100); err != nil {
		t.Fatal(err)
	}
	half := chunks[2] + ".tmp-123"
	if err := os.WriteFile(half, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}

	m2 := m.remount(t, args...)
	for name, want := range sums {
		if got := sha(t, filepath.Join(m2.dir, "bulk", name)); got != want {
			t.Errorf("%s after the kill and remount differs", name)
		}
	}
	log := m2.log(t)
	for _, want := range []string{"stale mount", "removing a file left half-written", "removing a cached file that can't be used", "dropping damaged chunk"} {
		if !strings.Contains(log, want) {
			t.Errorf("log after remount has no %q", want)
		}
	}
	if _, err := os.Stat(half); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("half-written file still there: %v", err)
	}
}

// TestCacheOnTinyDisk: a cache on an 8 MiB tmpfs, read through with 40 MiB
// of files, then with the disk filled by someone else: every read is
// right, served uncached when nothing fits.
func TestCacheOnTinyDisk(t *testing.T) {
	requireFUSE(t)
	tiny := t.TempDir()
	if err := syscall.Mount("tmpfs", tiny, "tmpfs", 0, "size=8m,mode=0700"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(tiny, syscall.MNT_DETACH) }) // after the mount stops: cleanups run last first

	st := ftpstest.NewStage(t, stagegen.StageOptions{LargeSize: 16 << 20, ManyFiles: -1})
	sums := bulk(t, st, 6, 4<<20)
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: st})
	sp := serverSpec(s, "--remote-dir", "/"+stagegen.AnonDir, "--cache-size", "1GiB")
	sp.cacheDir = filepath.Join(tiny, "cache")
	m := startMastfs(t, sp)
	large, _ := st.Lookup(stagegen.LargeFile)
	read := func(what string) {
		t.Helper()
		var wg sync.WaitGroup
		for name, want := range sums {
			wg.Go(func() {
				if got := sha(t, filepath.Join(m.dir, "bulk", name)); got != want {
					t.Errorf("%s: %s differs", what, name)
				}
			})
		}
		wg.Go(func() {
			if got := sha(t, filepath.Join(m.dir, "large", "large.fits")); got != large.SHA256 {
				t.Errorf("%s: large.fits differs", what)
			}
		})
		wg.Wait()
	}
	read("cache bound to a tiny disk")
	m.waitLog(t, "limit lowered to fit free disk", 30*time.Second)

	// Someone else fills the disk.
	filler, err := os.Create(filepath.Join(tiny, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := filler.Write(buf); err != nil {
			break
		}
	}
	filler.Close()
	// The cache evicts before it writes a chunk, so while it holds chunks
	// the filler costs it no failed write; cache.TestDiskFullOrReadOnly
	// covers a full disk with nothing left to evict.
	read("disk full")
	if !m.alive() {
		t.Fatal("mastfs died")
	}
}

// TestCacheDirDeleted: the cache directory removed under a running mount;
// reads go on, right, the cache is rebuilt, and what was read after the
// removal is served from it after a remount.
func TestCacheDirDeleted(t *testing.T) {
	st := ftpstest.NewStage(t, stagegen.StageOptions{LargeSize: 8 << 20, ManyFiles: -1})
	sums := bulk(t, st, 3, 3<<20)
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: st})
	args := []string{"--remote-dir", "/" + stagegen.AnonDir}
	m := startMount(t, s, "", args...)
	file := func(i int) (string, string) {
		name := fmt.Sprintf("file%02d.bin", i)
		return filepath.Join(m.dir, "bulk", name), sums[name]
	}
	p0, want0 := file(0)
	if got := sha(t, p0); got != want0 {
		t.Fatal("first read differs")
	}
	if err := os.RemoveAll(m.cacheDir); err != nil {
		t.Fatal(err)
	}
	dropPages(t, p0) // so the next read of it reaches the cache
	for i := range 3 {
		p, want := file(i)
		if got := sha(t, p); got != want {
			t.Fatalf("file %d after the cache was removed differs", i)
		}
	}
	if _, err := os.ReadDir(filepath.Join(m.dir, "nested")); err != nil {
		t.Fatal(err)
	}
	if cachedChunks(t, m.cacheDir) == 0 {
		t.Fatal("no chunk written after the cache was removed")
	}
	if err := m.stop(t); err != nil {
		t.Fatal(err)
	}

	before := sessionsEnded(t, s)
	m2 := m.remount(t, args...)
	for i := range 3 {
		p, want := file(i)
		if got := sha(t, filepath.Join(m2.dir, "bulk", filepath.Base(p))); got != want {
			t.Fatalf("file %d after remount differs", i)
		}
	}
	if sent := settledSent(t, s) - before; sent != 0 {
		t.Errorf("server sent %d bytes after remount: what was cached after the removal did not survive", sent)
	}
}
