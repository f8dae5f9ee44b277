package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// Remote streams come from a small pool shared with the rest of the
// program, and each costs several round trips to open. So one stream reads
// a file chunk after chunk for as long as reads stay ahead of it, and the
// chunks it reads are committed one by one as they complete.

// file is the engine's state of one file: its access pattern and the
// streams reading it.
type file struct {
	key     Key
	nchunks int64
	segment int64 // chunks per segment; 0: one stream reads on (see segmentLen)

	mu      sync.Mutex // guards pat, streams, and the fields of each stream marked as guarded by it
	pat     pattern
	streams []*stream
}

// stream is one remote read of a file from a chunk boundary onwards.
type stream struct {
	f      *file
	start  int64         // first chunk
	wake   chan struct{} // capacity 1: want grew, or stop was asked
	linger bool          // guarded by f.mu: stay open a moment once want is met
	held   *heldSlot     // the slot was taken for the stream (prefetch.go)

	// guarded by f.mu
	next, want int64         // chunks [next, want) are still to be read
	cap        int64         // want never passes this: the end of the stream's segment
	stop, done bool          // stop asked; goroutine finished
	err        error         // why the stream ended, if it failed
	progress   chan struct{} // closed and replaced whenever next advances, when filled reaches await, and when done
	buf        []byte        // the data of chunk next as it arrives; nil between chunks
	filled     int64         // bytes of buf in
	await      int64         // the fewest bytes of buf a reader waits for; 0: none waits
}

func (f *file) stopAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.streams {
		s.stopLocked()
	}
}

func (s *stream) stopLocked() {
	s.stop = true
	s.signal()
}

func (s *stream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// errStreamBroken marks a remote stream that failed after it opened, such
// as a data connection reset midway: a read waiting on it opens a fresh one
// from where it stopped, a bounded number of times.
var errStreamBroken = errors.New("remote stream broke")

// streamRetries is how many fresh streams a read opens after broken ones.
const streamRetries = 2

// spillKey names a chunk of a file in the spill.
type spillKey struct {
	path        string
	size, mtime int64
	chunk       int64
}

func (f *file) spillKey(i int64) spillKey {
	return spillKey{f.key.Path, f.key.Size, f.key.ModTime.UnixNano(), i}
}

// fetch returns the stream that will deliver chunk i of f, extending a
// stream already on its way there or starting one. The stream's plan runs on
// to the last chunk before want that is not cached. It returns a nil stream
// when chunk i is in the cache already.
func (c *Cache) fetch(f *file, i int64, pl plan) (*stream, error) {
	first, last := c.store.Missing(f.key, i, max(pl.want, i+1))
	if first != i {
		return nil, nil
	}
	pl.want = last + 1
	s := c.streamFor(f, i, pl, 0)
	if s == nil {
		return nil, ErrClosed
	}
	return s, nil
}

// prefetch keeps a sequential run's window ahead of a read of chunks [a, b]:
// it extends or starts streams for the chunks of [a, want) that are not
// cached. When some of [a, b] are missing, the read itself fetches them.
// Cached chunks between missing ones are read through and discarded: a new
// stream would cost more round trips than it saves. With StreamsPerFile > 1
// the window is cut into segments, each read by a stream of its own.
func (c *Cache) prefetch(f *file, a, b int64, pl plan) {
	if pl.want <= b+1 {
		return
	}
	first, last := c.store.Missing(f.key, a, pl.want)
	if first < 0 {
		return
	}
	if first <= b {
		if f.segment == 0 {
			return // the read's own stream runs on through the window
		}
		// The read fetches the segment it waits for; the segments after it
		// get streams of their own now, not when the reader reaches them.
		first, last = c.store.Missing(f.key, c.segmentEnd(f, first), pl.want)
		if first < 0 {
			return
		}
	}
	limit := 0
	if f.segment > 0 {
		limit = c.cfg.StreamsPerFile
		if c.slots.contended() {
			// Other files' reads want the streams: more for this one would
			// take slots from them, and each segment's end costs the server
			// what it had sent past it. The streams already here go on.
			limit = 1
		}
	}
	for i := first; i >= 0; {
		end := min(c.segmentEnd(f, i), last+1)
		if c.streamFor(f, i, plan{want: end, reach: pl.reach, linger: true}, limit) == nil || f.segment == 0 {
			return
		}
		i, _ = c.store.Missing(f.key, end, last+1)
	}
}

// segmentEnd returns the end of the segment holding chunk i.
func (c *Cache) segmentEnd(f *file, i int64) int64 {
	if f.segment == 0 {
		return f.nchunks
	}
	return min((i/f.segment+1)*f.segment, f.nchunks)
}

// streamFor returns a stream that will deliver chunk i: a live one already
// positioned at or before i, by at most pl.reach chunks or with i in its
// plan, extended towards pl.want; or a new one, unless limit (if not 0)
// streams are already reading the file. It returns nil then, and once the
// cache is closed.
func (c *Cache) streamFor(f *file, i int64, pl plan, limit int) *stream {
	want, reach, linger := min(max(pl.want, i+1), f.nchunks), pl.reach, pl.linger
	f.mu.Lock()
	defer f.mu.Unlock()
	live := 0
	for _, s := range f.streams {
		if !s.stop && s.next < s.cap {
			live++ // streams done with their segment don't count: they give way
		}
		if s.stop || s.next > i {
			continue
		}
		if i == s.cap && s.next == s.cap && !f.ownedLocked(i, s) {
			s.cap = c.segmentEnd(f, i) // on into the next segment, which no one reads
		}
		if i >= s.cap || (i >= s.want && i-s.next > reach) {
			continue
		}
		if c.slots.contended() {
			// Streams are scarce: read on through the segments after this
			// one that no stream owns, in the same RETR, rather than stop
			// at the segment's end and leave them to a new one.
			for s.cap < want && !f.ownedLocked(s.cap, s) {
				s.cap = c.segmentEnd(f, s.cap)
			}
		}
		s.linger = s.linger || linger
		if w := min(want, s.cap); w > s.want {
			s.want = w
			s.signal()
		}
		return s
	}
	if limit > 0 && live >= limit {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.draining.Load() {
		return nil
	}
	end := c.segmentEnd(f, i)
	s := &stream{f: f, start: i, next: i, want: min(want, end), cap: end, linger: linger, held: pl.held,
		wake: make(chan struct{}, 1), progress: make(chan struct{})}
	f.streams = append(f.streams, s)
	c.wg.Add(1)
	go c.run(s)
	return s
}

// ownedLocked reports whether chunk i lies in the segment of a live stream other than s.
func (f *file) ownedLocked(i int64, s *stream) bool {
	for _, x := range f.streams {
		if x != s && !x.stop && x.start <= i && i < x.cap {
			return true
		}
	}
	return false
}

// waitRead waits until s has the bytes pc wants, and copies them from the
// chunk in flight: a read is answered as soon as its own bytes are in, not
// once the whole chunk is, and from memory, not read back from the store.
// A read that takes the chunk's last byte returns once the chunk is
// stored, so that a reader done with a file leaves it cached. It reports
// false with a nil error when the chunk was delivered before the read
// could copy it, or when the stream stopped early without an error: the
// caller then looks in the store again.
func (c *Cache) waitRead(ctx context.Context, s *stream, pc piece) (bool, error) {
	i, within := pc.chunk, pc.within
	need := within + int64(len(pc.dst))
	f := s.f
	last := need >= c.chunkLen(f, i)
	copied := false
	for {
		f.mu.Lock()
		if s.next > i {
			f.mu.Unlock()
			return copied, nil
		}
		if !copied && s.next == i && s.buf != nil && s.filled >= need {
			copy(pc.dst, s.buf[within:need])
			copied = true
		}
		if copied && !last {
			f.mu.Unlock()
			return true, nil
		}
		if s.done {
			err := s.err
			f.mu.Unlock()
			return copied, err
		}
		if s.next == i && !copied && (s.await == 0 || need < s.await) {
			s.await = need
		}
		progress := s.progress
		f.mu.Unlock()
		select {
		case <-progress:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// run is a stream's goroutine.
func (c *Cache) run(s *stream) {
	defer c.wg.Done()
	err := c.acquire(s)
	if err == nil {
		var rc io.ReadCloser
		err = c.pump(s, &rc)
		if rc != nil {
			rc.Close() // early, usually: the rest of the file was not wanted
		}
		c.slots.release()
	}
	c.slots.setIdle(s, false)
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	s.done, s.stop, s.err = true, true, err
	close(s.progress)
	f.streams = slices.DeleteFunc(f.streams, func(x *stream) bool { return x == s })
}

// pump reads chunks from the remote until the stream's plan is done.
func (c *Cache) pump(s *stream, rc *io.ReadCloser) error {
	f := s.f
	cs := c.cfg.ChunkSize
	for {
		i, ok := c.nextChunk(s)
		if !ok {
			return nil
		}
		if *rc == nil {
			r, err := c.remote.ReadAt(c.ctx, f.key.Path, s.start*cs)
			if err == nil && c.draining.Load() {
				r.Close() // opened as Drain began: nothing of it is arriving yet
				return ErrClosed
			}
			if err != nil {
				return err
			}
			*rc = r
			c.opened.Add(1)
		}
		bp := c.bufs.Get().(*[]byte)
		buf := (*bp)[:c.chunkLen(f, i)]
		n, err := c.fill(s, *rc, buf)
		c.fetched.Add(int64(n))
		if err != nil {
			f.mu.Lock()
			s.buf, s.filled = nil, 0
			f.mu.Unlock()
			c.bufs.Put(bp)
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("remote file ended at %d of %d bytes: %w", i*cs+int64(n), f.key.Size, io.ErrUnexpectedEOF)
			}
			if c.ctx.Err() == nil {
				err = fmt.Errorf("%w at chunk %d: %w", errStreamBroken, i, err)
			}
			return err
		}
		if first, _ := c.store.Missing(f.key, i, i+1); first == i {
			c.commit(f, i, buf)
		}
		if c.draining.Load() {
			c.committed.Add(1)
		}
		f.mu.Lock()
		s.next = i + 1
		s.buf, s.filled, s.await = nil, 0, 0
		close(s.progress)
		s.progress = make(chan struct{})
		f.mu.Unlock()
		c.bufs.Put(bp)
	}
}

// fill reads the data of chunk s.next from r into data, which readers can
// copy from as it fills (waitRead). Short of the whole chunk, it returns
// the error that stopped it, io.EOF included.
func (c *Cache) fill(s *stream, r io.Reader, data []byte) (int, error) {
	f := s.f
	f.mu.Lock()
	s.buf, s.filled = data, 0
	f.mu.Unlock()
	n := 0
	for n < len(data) {
		m, err := r.Read(data[n:])
		if m > 0 {
			n += m
			f.mu.Lock()
			s.filled = int64(n)
			if s.await > 0 && s.filled >= s.await {
				s.await = 0
				close(s.progress)
				s.progress = make(chan struct{})
			}
			f.mu.Unlock()
		}
		if err != nil && n < len(data) {
			return n, err
		}
	}
	return n, nil
}

// nextChunk returns the next chunk to read, or false when the stream should
// end: stop was asked, the file is read to its end, or the plan is met and
// no read extended it within the idle timeout.
func (c *Cache) nextChunk(s *stream) (int64, bool) {
	f := s.f
	var idle *time.Timer
	var idleSince time.Time
	defer func() {
		if idle != nil {
			idle.Stop()
			c.slots.setIdle(s, false)
		}
	}()
	for {
		if c.draining.Load() {
			return 0, false
		}
		f.mu.Lock()
		if !s.stop && s.next < s.want {
			i := s.next
			f.mu.Unlock()
			return i, true
		}
		if s.stop || s.next >= f.nchunks || !s.linger || (s.next == s.cap && f.ownedLocked(s.cap, s)) {
			s.stop = true
			f.mu.Unlock()
			return 0, false
		}
		f.mu.Unlock()
		if idle == nil {
			// Registered as idle before looking for waiters, while a waiter
			// counts itself before looking for idle streams: one sees the other.
			c.slots.setIdle(s, true)
			idle = time.NewTimer(c.cfg.IdleTimeout)
			idleSince = time.Now()
		}
		var yield <-chan time.Time
		if c.slots.waiting.Load() > 0 {
			left := yieldAfter - time.Since(idleSince)
			if left <= 0 {
				f.mu.Lock()
				s.linger = false // a reader needs the slot more than a reader that may come
				f.mu.Unlock()
				continue
			}
			yield = time.After(left)
		}
		select {
		case <-yield:
		case <-s.wake:
		case <-idle.C:
			f.mu.Lock()
			s.linger = false // decide under the lock whether a read came just in time
			f.mu.Unlock()
		case <-c.starting.Done():
			return 0, false
		}
	}
}

// commit stores a chunk. When the disk refuses it, it evicts and tries
// once more; failing that, the chunk goes to the spill, a few chunks kept
// in memory so the read is served all the same.
func (c *Cache) commit(f *file, i int64, data []byte) {
	err := c.store.PutChunk(f.key, i, data)
	if err == nil {
		return
	}
	if !errors.Is(err, ErrStale) {
		c.log.Warn("cache: write failed; evicting and retrying", "path", f.key.Path, "chunk", i, "err", err)
		c.store.Evict(max(4*c.cfg.ChunkSize, c.store.Usage().Used/8))
		if err = c.store.PutChunk(f.key, i, data); err == nil {
			return
		}
		c.writeErrors.Add(1)
		c.log.Warn("cache: write failed again; serving the chunk uncached", "path", f.key.Path, "chunk", i, "err", err)
	}
	c.spill.Add(f.spillKey(i), bytes.Clone(data))
}

// fetchUncached reads bytes straight from the remote into dst, for a read
// whose chunk keeps vanishing from a cache far too small for its load.
func (c *Cache) fetchUncached(ctx context.Context, k Key, off int64, dst []byte) error {
	if err := c.slots.acquire(ctx); err != nil {
		return err
	}
	defer c.slots.release()
	rc, err := c.remote.ReadAt(ctx, k.Path, off)
	if err != nil {
		return err
	}
	defer rc.Close()
	c.opened.Add(1)
	n, err := io.ReadFull(rc, dst)
	c.fetched.Add(int64(n))
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("remote file ended at %d of %d bytes: %w", off+int64(n), k.Size, io.ErrUnexpectedEOF)
	}
	return err
}
