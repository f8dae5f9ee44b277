package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"mastfs/cache"
	"mastfs/fs/stage"
)

// fakeLister serves listings from a map of remote directory to entries;
// a directory set in fail answers with that error instead.
type fakeLister struct {
	mu    sync.Mutex // guards dirs, fail, calls, gate, inflight, maxIn
	dirs  map[string][]stage.Entry
	fail  map[string]error
	calls map[string]int
	gate  chan struct{} // when set, List waits for it (or ctx) before answering
	// inflight and maxIn count listings running at once.
	inflight, maxIn int
}

func newLister() *fakeLister {
	return &fakeLister{dirs: map[string][]stage.Entry{}, fail: map[string]error{}, calls: map[string]int{}}
}

func (l *fakeLister) List(ctx context.Context, dir string) ([]stage.Entry, error) {
	l.mu.Lock()
	l.calls[dir]++
	l.inflight++
	l.maxIn = max(l.maxIn, l.inflight)
	gate := l.gate
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.inflight--
		l.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.fail[dir]; err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	ents, ok := l.dirs[dir]
	if !ok {
		return nil, fmt.Errorf("list %s: %w", dir, iofs.ErrNotExist)
	}
	return append([]stage.Entry(nil), ents...), nil
}

// set replaces the listing of dir.
func (l *fakeLister) set(dir string, ents ...stage.Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dirs[dir] = ents
}

// failWith makes dir answer err (nil: answer again).
func (l *fakeLister) failWith(dir string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail[dir] = err
}

func (l *fakeLister) count(dir string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls[dir]
}

var mtime = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func file(name string, size int64) stage.Entry {
	return stage.Entry{Name: name, Type: stage.File, Size: size, ModTime: mtime}
}

func dir(name string) stage.Entry {
	return stage.Entry{Name: name, Type: stage.Dir, ModTime: mtime}
}

// fakeContents serves file bytes from memory and keeps records in memory.
type fakeContents struct {
	mu      sync.Mutex // guards the maps, reads, forgot
	data    map[cache.Key][]byte
	records map[string][]byte
	fail    map[string]error // path: error every read of it returns
	reads   int
	forgot  []string
	block   chan struct{} // when set, ReadAt waits for it (or ctx)
}

func newContents() *fakeContents {
	return &fakeContents{data: map[cache.Key][]byte{}, records: map[string][]byte{}, fail: map[string]error{}}
}

// put stores the bytes of remote file p as listed by e.
func (c *fakeContents) put(p string, e stage.Entry, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.data[cache.Key{Path: p, Size: e.Size, ModTime: e.ModTime}] = b
}

func (c *fakeContents) ReadAt(ctx context.Context, k cache.Key, p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.reads++
	block, err := c.block, c.fail[k.Path]
	b, ok := c.data[k]
	c.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("no bytes for %v", k)
	}
	if off >= int64(len(b)) {
		return 0, nil
	}
	return copy(p, b[off:]), nil
}

func (c *fakeContents) readCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

func (c *fakeContents) Forget(prefix string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgot = append(c.forgot, prefix)
	return nil
}

func (c *fakeContents) PutRecord(kind, name string, data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records[kind+"\x00"+name] = append([]byte(nil), data...)
	return nil
}

func (c *fakeContents) GetRecord(kind, name string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.records[kind+"\x00"+name]
	if !ok {
		return nil, iofs.ErrNotExist
	}
	return b, nil
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// mountTree mounts a tree over lister and contents through the real
// kernel in a temporary directory, unmounted when the test ends. It
// returns the mount point and the root.
func mountTree(t *testing.T, l Lister, c Contents, opts Options) (string, *Root) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("mount tests need root (mount(2) with /dev/fuse)")
		}
		t.Skip("mount tests need root")
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	mnt := t.TempDir()
	root := NewRoot(l, c, opts)
	srv, err := Mount(mnt, root, opts, MountOptions{Source: "mastfs-test"})
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() {
		root.Stop()
		if err := srv.Unmount(); err != nil {
			t.Logf("unmount %s: %v; detaching", mnt, err)
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	return mnt, root
}

// eventually polls cond until it holds, failing the test after a bound
// far beyond what the condition needs on an idle machine.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// errnoOf runs a system call's result through errors.As.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestMountServesListingAndBytes(t *testing.T) {
	l, c := newLister(), newContents()
	a := file("a.fits", 11)
	l.set("/", a, dir("sub"))
	l.set("/sub")
	c.put("/a.fits", a, []byte("hello world"))
	mnt, _ := mountTree(t, l, c, Options{})
	if got := names(t, mnt); fmt.Sprint(got) != "[a.fits sub]" {
		t.Fatalf("root lists %v", got)
	}
	if got := readFile(t, filepath.Join(mnt, "a.fits")); !bytes.Equal(got, []byte("hello world")) {
		t.Fatalf("a.fits reads %q", got)
	}
	fi, err := os.Stat(filepath.Join(mnt, "a.fits"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 11 || !fi.ModTime().Equal(mtime) || fi.Mode().Perm() != 0o444 {
		t.Fatalf("a.fits: size %d time %v mode %v", fi.Size(), fi.ModTime(), fi.Mode())
	}
	if err := os.WriteFile(filepath.Join(mnt, "new"), nil, 0o644); errnoOf(err) != syscall.EROFS {
		t.Fatalf("create: %v, want EROFS", err)
	}
	if n := l.count(path.Join("/", "a.fits")); n != 0 {
		t.Fatalf("a file was listed by its path %d times", n)
	}
}
