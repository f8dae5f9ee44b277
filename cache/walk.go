package cache

import (
	"context"
	"errors"
	"fmt"

	"mastfs/cache/fits"
)

// A FITS reader such as astropy reads a header up to its END card, jumps
// over the data, reads the next header, and so on: each hop depends on the
// one before, and far from the server each costs a round trip or more.
// When a file turns out to be FITS, the cache walks its headers itself,
// once per version for all readers, fetching each header's chunks before
// the reader asks. It reads nothing readers see, so a header it cannot
// follow ends it silently and readers get exactly what the server has.
// A walk that a reader's first read started fetches as that reader would:
// the reader is about to hop there, and a stream lingering for a follow-up
// read gives its slot up to it. One that a prefetch started is low
// priority, like the prefetch (prefetch.go).

// walkParallel bounds the walks running at once.
const walkParallel = 8

// noticeHead looks at the first bytes of k, as a reader just read them,
// and walks the file's headers if it is FITS.
func (c *Cache) noticeHead(k Key, head []byte, off int64) {
	if off == 0 {
		c.walkFile(k, head, false)
	}
}

// walkFile starts the header walk of k, once per version, if the file is
// FITS and larger than one chunk (the reader's first read fetched all of a
// smaller one). head is the file's first bytes, or nil to read them from
// the store; low says the walk fetches at low priority.
func (c *Cache) walkFile(k Key, head []byte, low bool) {
	if k.Size <= c.cfg.ChunkSize || c.draining.Load() {
		return
	}
	if head == nil {
		b := make([]byte, len(fits.Signature))
		if !c.store.ReadChunk(k, 0, b, 0) {
			return
		}
		head = b
	}
	if !fits.IsFITS(head) {
		return
	}
	a := c.startAhead()
	a.mu.Lock()
	if a.walked.Contains(keyOf(k)) || a.walking.Load() >= walkParallel {
		a.mu.Unlock() // walked, or too many at once: a later read may start it
		return
	}
	a.walked.Add(keyOf(k), nil)
	a.walks.Add(1)
	a.walking.Add(1)
	a.mu.Unlock()
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.wg.Add(1)
	}
	c.mu.Unlock()
	if closed {
		a.walking.Add(-1)
		return
	}
	go func() {
		defer c.wg.Done()
		defer a.walking.Add(-1)
		units, stop := fits.Walk(&walkReader{c: c, k: k, ctx: c.starting, low: low}, k.Size, fits.Limits{}, func(h fits.HDU) bool {
			a.mu.Lock()
			defer a.mu.Unlock()
			if old, ok := a.walked.Peek(keyOf(k)); ok {
				a.walked.Add(keyOf(k), append(old[:len(old):len(old)], h))
			}
			return true
		})
		c.log.Debug("cache: FITS headers walked", "path", k.Path, "units", len(units), "stop", stop.String())
	}()
}

// walkReader reads a file's header blocks for fits.Walk: from the store,
// or fetched by a stream. It keeps the last chunk it read, since a
// header's blocks follow one another in it.
type walkReader struct {
	c     *Cache
	k     Key
	ctx   context.Context
	low   bool  // fetch at low priority
	chunk int64 // index of buf's chunk; -1 before the first
	buf   []byte
	f     *file
}

func (r *walkReader) ReadAt(p []byte, off int64) (int, error) {
	cs := r.c.cfg.ChunkSize
	n := 0
	for n < len(p) {
		if off+int64(n) >= r.k.Size {
			return n, errors.New("walk: past the end")
		}
		i := (off + int64(n)) / cs
		if err := r.load(i); err != nil {
			return n, err
		}
		n += copy(p[n:], r.buf[off+int64(n)-i*cs:])
	}
	return n, nil
}

// load makes buf chunk i, fetching it if the store lacks it.
func (r *walkReader) load(i int64) error {
	if r.buf != nil && r.chunk == i {
		return nil
	}
	c := r.c
	buf := make([]byte, min(c.cfg.ChunkSize, r.k.Size-i*c.cfg.ChunkSize))
	for try := 0; try < 3; try++ {
		if c.store.ReadChunk(r.k, i, buf, 0) {
			r.buf, r.chunk = buf, i
			return nil
		}
		if r.f == nil {
			f, err := c.file(r.k)
			if err != nil {
				return err
			}
			r.f = f
		}
		s, release, err := r.fetch(i)
		if err != nil {
			return err
		}
		if s != nil {
			c.waitPast(r.ctx, s, i)
			release()
		}
		if err := r.ctx.Err(); err != nil {
			return err
		}
	}
	return fmt.Errorf("walk: chunk %d not kept", i)
}

// fetch starts the fetch of chunk i, or finds it on its way: a nil stream
// means the chunk is in the store already.
func (r *walkReader) fetch(i int64) (*stream, func(), error) {
	if r.low {
		s, release, _ := r.c.fetchLow(r.ctx, r.f, i, i+1)
		if s == nil {
			return nil, nil, fmt.Errorf("walk: no room or slot for chunk %d", i)
		}
		return s, release, nil
	}
	s, err := r.c.fetch(r.f, i, plan{want: i + 1})
	return s, func() {}, err
}

// headerCap bounds the read-ahead of a read of chunks [a, b] of k that
// starts in the chunks of a header the walk found, or the chunk after it:
// such a read is a FITS reader's hop, and what follows the header is data
// it jumps over. Without the bound, the kernel's read-ahead past the
// header's end looks like a sequential run and earns a window of data
// chunks at every hop. A run that goes on past that chunk (a copy) reads
// ahead again; a stream already reading on is not shortened.
func (c *Cache) headerCap(k Key, a, b, want int64) int64 {
	p := &c.pre
	if want <= b+1 || !p.ready.Load() {
		return want
	}
	p.mu.Lock()
	units, _ := p.walked.Peek(keyOf(k))
	p.mu.Unlock()
	cs := c.cfg.ChunkSize
	for _, h := range units {
		if a >= h.Offset/cs && a <= (h.DataOffset()-1)/cs+1 {
			return b + 1
		}
	}
	return want
}
