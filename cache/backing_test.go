package cache

import (
	"io"
	"testing"
	"time"
)

// Backing hands out the data file of a wholly cached file, which holds the
// server's bytes; while it is held, reading other files through a small
// cache evicts none of it, and the bound holds again once it is released.
// A file partly cached, or of another version, gets none.
func TestBacking(t *testing.T) {
	const bound = 16 * testChunk
	r := newFake()
	k := r.add("/whole.fits", 6*testChunk+321, 80)
	other := r.add("/other.fits", 40*testChunk, 81)
	c := openCache(t, t.TempDir(), r, func(cfg *Config) { cfg.MaxBytes = bound; cfg.StreamsPerFile = 1 })
	readSeq(t, c, k, 80, 3000)
	if _, _, ok := c.Backing(other); ok {
		t.Fatal("a backing file for a file not cached")
	}
	f, release, ok := c.Backing(k)
	if !ok {
		t.Fatal("no backing file for a file wholly cached")
	}
	check := func() {
		t.Helper()
		b, err := io.ReadAll(io.NewSectionReader(f, 0, k.Size+1))
		if err != nil || int64(len(b)) != k.Size {
			t.Fatalf("backing file: %d bytes, %v", len(b), err)
		}
		expect(t, 80, 0, b)
	}
	check()
	readSeq(t, c, other, 81, 128<<10)
	check()
	if st := c.Stats(); st.Used > bound+k.Size {
		t.Fatalf("used %d while held: more than the bound and the held file", st.Used)
	}
	release()
	if st := c.Stats(); st.Used > bound {
		t.Fatalf("used %d after release, bound %d", st.Used, bound)
	}
	if _, _, ok := c.Backing(other); ok {
		t.Fatal("a backing file for a file partly cached")
	}
	readSeq(t, c, k, 80, 1<<20)
	k2 := k
	k2.ModTime = k.ModTime.Add(time.Second)
	if _, _, ok := c.Backing(k2); ok {
		t.Fatal("a backing file for a version never cached")
	}
	if _, _, ok := c.Backing(k); ok {
		t.Fatal("a backing file for a version replaced")
	}
}
