package stagegen

import (
	"crypto/sha256"
	"hash"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// summer is a writer that digests what it is given.
type summer interface {
	io.Writer
	Sum() []byte
}

type plainHash struct{ h hash.Hash }

func (p plainHash) Write(b []byte) (int, error) { return p.h.Write(b) }
func (p plainHash) Sum() []byte                 { return p.h.Sum(nil) }

// pipeHash digests in a goroutine of its own: Write copies into one of a
// few buffers and returns, so hashing overlaps with writing the file.
type pipeHash struct {
	h    hash.Hash
	work chan []byte
	free chan []byte
	done chan struct{}
}

func newPipeHash() *pipeHash {
	p := &pipeHash{h: sha256.New(), work: make(chan []byte, 4), free: make(chan []byte, 4), done: make(chan struct{})}
	for range 4 {
		p.free <- make([]byte, 0, 1<<20)
	}
	go func() {
		for b := range p.work {
			p.h.Write(b)
			p.free <- b[:0]
		}
		close(p.done)
	}()
	return p
}

func (p *pipeHash) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		buf := <-p.free
		k := min(len(b), cap(buf))
		p.work <- append(buf, b[:k]...)
		b = b[k:]
	}
	return n, nil
}

// Sum waits for the digest of everything written; call it once.
func (p *pipeHash) Sum() []byte {
	close(p.work)
	<-p.done
	return p.h.Sum(nil)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// lutimes sets a symlink's own times; os.Chtimes would follow it.
func lutimes(p string, t time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "lutimes", Path: p, Err: err}
	}
	return nil
}
