package cache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory, unmounted
// at cleanup (after the caches opened later are closed).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("mounting a tmpfs needs root, which CI has")
		}
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes into name until the file system is full.
func fillDisk(t *testing.T, name string) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			return
		}
	}
}

// (i) A full disk makes the cache evict and retry; a disk that stays full,
// or turns read-only, still gets every read served right, uncached.
func TestDiskFullOrReadOnly(t *testing.T) {
	mnt := mountTmpfs(t, "2m")
	dir := filepath.Join(mnt, "cache")
	r := newFake()
	a := r.add("/a", 8*testChunk, 40)
	b := r.add("/b", 8*testChunk, 41)
	cc := r.add("/c", 8*testChunk, 42)
	d := r.add("/d", 8*testChunk, 43)
	// One stream per file: the byte counts below assume no segment stream
	// still reading ahead when a read returns.
	oneStream := func(cfg *Config) { cfg.StreamsPerFile = 1 }
	c := openCache(t, dir, r, oneStream)
	if st := c.Stats(); st.Limit > 2<<20 {
		t.Fatalf("limit %d not lowered to fit a 2 MiB disk", st.Limit)
	}
	readSeq(t, c, a, 40, 128<<10)

	// Full, but eviction frees room: b gets cached in place of a.
	fillDisk(t, filepath.Join(mnt, "filler"))
	readSeq(t, c, b, 41, 128<<10)
	st := c.Stats()
	if st.WriteErrors != 0 || st.Chunks == 0 || st.Used > 8*testChunk {
		t.Fatalf("after a full disk with chunks to evict: %+v", st)
	}
	before := st.BytesFetched
	p := make([]byte, 1000)
	if _, err := c.ReadAt(context.Background(), b, p, 7*testChunk); err != nil {
		t.Fatal(err)
	}
	expect(t, 41, 7*testChunk, p)
	if c.Stats().BytesFetched != before {
		t.Fatal("the chunk written after eviction was not served from disk")
	}

	// Full, with nothing left to evict: served uncached, and right.
	c.Forget("")
	fillDisk(t, filepath.Join(mnt, "filler"))
	before = c.Stats().BytesFetched
	readSeq(t, c, cc, 42, 128<<10)
	st = c.Stats()
	if st.WriteErrors == 0 || st.Chunks != 0 {
		t.Fatalf("full disk, nothing to evict: %+v", st)
	}
	if got := st.BytesFetched - before; got > 2*cc.Size {
		t.Fatalf("fetched %d bytes to read %d uncached", got, cc.Size)
	}

	// Read-only.
	os.Remove(filepath.Join(mnt, "filler"))
	readSeq(t, c, a, 40, 128<<10) // cached again while writable
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	readSeq(t, c, d, 43, 128<<10)
	if err := c.PutRecord("dir", "/d", []byte("x")); err == nil {
		t.Fatal("PutRecord on a read-only disk succeeded")
	}
	c.Close()

	// A cache tree on a read-only disk still opens, serves what it holds,
	// and fetches the rest. (How much of a survived the full disk above
	// depends on which chunks the failed writes evicted, so only the upper
	// bound is checked.)
	c = openCache(t, dir, r, oneStream)
	readSeq(t, c, a, 40, 128<<10)
	readSeq(t, c, d, 43, 128<<10)
	if st := c.Stats(); st.BytesFetched > a.Size+d.Size || st.Chunks == 0 || st.Hits == 0 {
		t.Fatalf("read-only cache: %+v", st)
	}
	c.Close()
}
