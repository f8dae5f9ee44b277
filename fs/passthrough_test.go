package fs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"mastfs/cache"
	"mastfs/fs/stage"
)

// backedContents is fakeContents whose wholly cached versions have a
// backing file on disk.
type backedContents struct {
	*fakeContents
	dir string

	mu    sync.Mutex // guards files, held, asked
	files map[cache.Key]string
	held  int // Backing answers not yet released
	asked int
}

func newBacked(t *testing.T) *backedContents {
	return &backedContents{fakeContents: newContents(), dir: t.TempDir(), files: map[cache.Key]string{}}
}

// cached stores the bytes of p as listed by e, wholly cached: in memory
// for the FUSE path and in a backing file.
func (c *backedContents) cached(t *testing.T, p string, e stage.Entry, b []byte) {
	c.put(p, e, b)
	name := filepath.Join(c.dir, filepath.Base(p)+"-"+time.Now().Format("150405.000000000"))
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files[cache.Key{Path: p, Size: e.Size, ModTime: e.ModTime}] = name
}

func (c *backedContents) Backing(k cache.Key) (*os.File, func(), bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked++
	name, ok := c.files[k]
	if !ok {
		return nil, nil, false
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, false
	}
	c.held++
	var once sync.Once
	return f, func() {
		once.Do(func() {
			c.mu.Lock()
			c.held--
			c.mu.Unlock()
			f.Close()
		})
	}, true
}

func (c *backedContents) holds() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held
}

// checkFile reads p with read(2) and through mmap, and compares both with want.
func checkFile(t *testing.T, p string, want []byte) {
	t.Helper()
	if got := readFile(t, p); !bytes.Equal(got, want) {
		t.Fatalf("%s reads %d bytes, not the %d expected", p, len(got), len(want))
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, len(want), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap %s: %v", p, err)
	}
	defer syscall.Munmap(m)
	if !bytes.Equal(m, want) {
		t.Fatalf("%s mapped differs", p)
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/4093)
	}
	return b
}

func TestPassthrough(t *testing.T) {
	for _, forced := range []bool{false, true} {
		name := map[bool]string{false: "passthrough", true: "forced_fuse"}[forced]
		t.Run(name, func(t *testing.T) {
			l, c, clk := newLister(), newBacked(t), newClock()
			data := pattern(3<<20 + 123)
			v1 := file("big.fits", int64(len(data)))
			l.set("/", v1)
			c.cached(t, "/big.fits", v1, data)
			mnt, root := mountTree(t, l, c, Options{Passthrough: true, ForceNoPassthrough: forced,
				DirTTL: time.Hour, Clock: clk.Now})
			p := filepath.Join(mnt, "big.fits")
			checkFile(t, p, data)
			switch {
			case forced:
				if root.ReadPath() != PathFUSE || root.PassthroughOpens() != 0 || c.readCount() == 0 {
					t.Fatalf("forced off: path %s, %d passthrough opens, %d FUSE reads",
						root.ReadPath(), root.PassthroughOpens(), c.readCount())
				}
				c.mu.Lock()
				asked := c.asked
				c.mu.Unlock()
				if asked != 0 {
					t.Fatalf("forced off: backing files asked for %d times", asked)
				}
			default:
				if root.ReadPath() != PathPassthrough {
					t.Fatalf("read path %s: this kernel (6.9+, as root) should take passthrough", root.ReadPath())
				}
				if root.PassthroughOpens() < 2 || c.readCount() != 0 {
					t.Fatalf("passthrough: %d opens, %d reads through FUSE; want 2+ and 0",
						root.PassthroughOpens(), c.readCount())
				}
			}
			eventually(t, "backing files released after close", func() bool { return c.holds() == 0 })

			// A new version, not cached yet, opens on the FUSE path even
			// while the old one stays open in passthrough.
			held, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			data2 := append(pattern(1000), 'x')
			v2 := file("big.fits", int64(len(data2)))
			c.put("/big.fits", v2, data2)
			l.set("/", v2)
			if _, err := root.Refresh(context.Background(), ""); err != nil {
				t.Fatal(err)
			}
			before := c.readCount()
			checkFile(t, p, data2)
			if c.readCount() == before {
				t.Fatal("the new version was not read through FUSE")
			}
			old := make([]byte, 4096)
			if _, err := held.ReadAt(old, 1<<20); err != nil || !bytes.Equal(old, data[1<<20:1<<20+4096]) {
				t.Fatalf("the old version's open file: %v, or wrong bytes", err)
			}
		})
	}
}

func TestPassthroughOffWithoutBacker(t *testing.T) {
	l, c := newLister(), newContents()
	data := pattern(5000)
	e := file("f", int64(len(data)))
	l.set("/", e)
	c.put("/f", e, data)
	mnt, root := mountTree(t, l, c, Options{Passthrough: true})
	checkFile(t, filepath.Join(mnt, "f"), data)
	if root.ReadPath() != PathFUSE || c.readCount() == 0 {
		t.Fatalf("contents without backing files: path %s, %d reads", root.ReadPath(), c.readCount())
	}
}

// The kernel refuses a backing file that is itself on a FUSE mount that
// takes passthrough (stacking too deep): the open falls back to the FUSE
// path, for good.
func TestPassthroughRefusedFallsBack(t *testing.T) {
	data := pattern(70000)
	e := file("f", int64(len(data)))
	la, ca := newLister(), newContents()
	la.set("/", e)
	ca.put("/f", e, data)
	under, _ := mountTree(t, la, ca, Options{Passthrough: true})

	l, c := newLister(), newBacked(t)
	l.set("/", e, file("g", int64(len(data))))
	c.put("/f", e, data)
	c.put("/g", file("g", int64(len(data))), data)
	c.files[cache.Key{Path: "/f", Size: e.Size, ModTime: e.ModTime}] = filepath.Join(under, "f")
	c.files[cache.Key{Path: "/g", Size: e.Size, ModTime: e.ModTime}] = filepath.Join(under, "f")
	mnt, root := mountTree(t, l, c, Options{Passthrough: true})
	checkFile(t, filepath.Join(mnt, "f"), data)
	checkFile(t, filepath.Join(mnt, "g"), data)
	if root.ReadPath() != PathFUSE || root.PassthroughOpens() != 0 || c.readCount() == 0 {
		t.Fatalf("refused: path %s, %d passthrough opens, %d FUSE reads",
			root.ReadPath(), root.PassthroughOpens(), c.readCount())
	}
	c.mu.Lock()
	asked := c.asked
	c.mu.Unlock()
	if asked != 1 {
		t.Fatalf("after a refusal backing files were asked for %d times, want 1", asked)
	}
	if c.holds() != 0 {
		t.Fatalf("%d backing files held after the refusal", c.holds())
	}
}
