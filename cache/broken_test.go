package cache

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// breaking wraps a Remote: the first n streams it opens fail with a
// connection reset after after bytes, as a data connection cut by the
// network does.
type breaking struct {
	Remote
	after int64

	mu    sync.Mutex // guards left, broke
	left  int
	broke int
}

func (b *breaking) ReadAt(ctx context.Context, path string, off int64) (io.ReadCloser, error) {
	rc, err := b.Remote.ReadAt(ctx, path, off)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left == 0 {
		return rc, nil
	}
	b.left--
	return &breakingStream{ReadCloser: rc, b: b, left: b.after}, nil
}

type breakingStream struct {
	io.ReadCloser
	b    *breaking
	left int64
}

func (s *breakingStream) Read(p []byte) (int, error) {
	if s.left <= 0 {
		s.b.mu.Lock()
		s.b.broke++
		s.b.mu.Unlock()
		return 0, syscall.ECONNRESET
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.ReadCloser.Read(p)
	s.left -= int64(n)
	return n, err
}

// A remote stream that breaks midway is opened again from where it
// stopped: the reader gets every byte, right, and no error.
func TestBrokenStreamReopened(t *testing.T) {
	f := newFake()
	k := f.add("/cut", 40*testChunk+5, 21)
	r := &breaking{Remote: f, after: 5*testChunk + 100, left: 2}
	g0 := runtime.NumGoroutine()
	c := openCache(t, t.TempDir(), r, nil)
	readSeq(t, c, k, 21, 128<<10)
	if r.broke != 2 {
		t.Fatalf("%d streams broke, want 2", r.broke)
	}
	c.Close()
	// Goroutines of other tests' timers and of the runtime may still be
	// ending: wait, boundedly, for the count to come back.
	g := runtime.NumGoroutine()
	for deadline := time.Now().Add(30 * time.Second); g > g0 && time.Now().Before(deadline); g = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}
	if g > g0 {
		t.Errorf("%d goroutines 30 s after Close, %d before Open", g, g0)
	}
}

// A remote whose every stream breaks gives an error, promptly, after a
// bounded number of fresh streams; nothing wrong is cached.
func TestBrokenStreamGivesUp(t *testing.T) {
	f := newFake()
	k := f.add("/bad", 10*testChunk, 22)
	r := &breaking{Remote: f, after: 100, left: 1 << 30}
	c := openCache(t, t.TempDir(), r, nil)
	start := time.Now()
	_, err := c.ReadAt(context.Background(), k, make([]byte, 1000), 3*testChunk)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("err = %v, want the reset", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("gave up after %v", d)
	}
	opened, _, _ := f.counts()
	if opened > 4 {
		t.Fatalf("%d streams opened for one read of a broken remote", opened)
	}
	if st := c.Stats(); st.Chunks != 0 {
		t.Fatalf("%d chunks cached from streams that never delivered one", st.Chunks)
	}
	// A missing file is not retried.
	f.failOpen["/bad"] = fs.ErrNotExist
	before, _, _ := f.counts()
	if _, err := c.ReadAt(context.Background(), k, make([]byte, 1000), 5*testChunk); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
	if after, _, _ := f.counts(); after != before {
		t.Fatalf("a missing file was retried")
	}
}
