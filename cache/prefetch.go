package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"mastfs/cache/fits"
)

// Fetching ahead of any reader (Prefetch, and the FITS header walk of a
// file prefetched, walk.go) is low priority: it takes a slot only when one is free beyond
// the one kept for readers and no reader waits for one, and it only fills
// room the cache has free, so it never evicts a chunk, least of all one a
// reader is using. A reader that wants a chunk a low stream is fetching
// joins that stream, as it would join any other.

// heldSlot marks a stream started with a slot its creator already took:
// its goroutine does not ask for one (see Cache.run).
type heldSlot struct{}

// prefetcher is the state of fetching ahead; its zero value is ready.
type prefetcher struct {
	once sync.Once
	kick chan struct{} // capacity 1: a request was queued

	mu       sync.Mutex // guards queue, reserved, walked
	queue    []prefetchReq
	reserved int64                               // bytes of low streams in flight, not yet in the store
	walked   *simplelru.LRU[walkKey, []fits.HDU] // file versions walked, or walking, and the units found

	asked, handled atomic.Int64 // requests queued, and taken from the queue and dealt with
	files, bytes   atomic.Int64 // prefetches started and the bytes they asked for
	walks          atomic.Int64 // FITS walks started
	walking        atomic.Int64 // FITS walks running
	ready          atomic.Bool  // walked is made
}

type prefetchReq struct {
	k Key
	n int64
}

// walkKey names a file version.
type walkKey struct {
	path        string
	size, mtime int64
}

func keyOf(k Key) walkKey { return walkKey{k.Path, k.Size, k.ModTime.UnixNano()} }

// Bounds of fetching ahead.
const (
	prefetchQueued = 64   // requests waiting for a slot; more are dropped
	walksKept      = 4096 // file versions remembered as walked
)

// Prefetch fetches the first n bytes of k (the whole file when n reaches
// its size) into the cache, ahead of any reader and at low priority. It
// returns at once; the fetch waits for a spare slot, and is dropped when
// too many wait already or the cache has no free room for it. A FITS file
// fetched this way has its headers walked too.
func (c *Cache) Prefetch(k Key, n int64) {
	n = min(n, k.Size)
	if n <= 0 || c.draining.Load() {
		return
	}
	a := c.startAhead()
	a.mu.Lock()
	if len(a.queue) >= prefetchQueued {
		a.mu.Unlock()
		return
	}
	a.queue = append(a.queue, prefetchReq{k, n})
	a.asked.Add(1)
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// PrefetchStats returns the prefetches started, the bytes they asked for,
// and the FITS walks started, since Open.
func (c *Cache) PrefetchStats() (files, bytes, walks int64) {
	a := c.startAhead()
	return a.files.Load(), a.bytes.Load(), a.walks.Load()
}

// startAhead returns the state of fetching ahead, starting its goroutine once.
func (c *Cache) startAhead() *prefetcher {
	a := &c.pre
	a.once.Do(func() {
		a.kick = make(chan struct{}, 1)
		a.walked, _ = simplelru.NewLRU[walkKey, []fits.HDU](walksKept, nil)
		a.ready.Store(true)
		c.mu.Lock()
		closed := c.closed
		if !closed {
			c.wg.Add(1)
		}
		c.mu.Unlock()
		if !closed {
			go c.prefetchLoop()
		}
	})
	return a
}

// prefetchLoop starts the queued prefetches one by one, each once a spare
// slot is free, until Close.
func (c *Cache) prefetchLoop() {
	defer c.wg.Done()
	a := &c.pre
	for {
		if c.starting.Err() != nil {
			return // Close, or Drain: what is still queued is dropped, not walked
		}
		a.mu.Lock()
		var r prefetchReq
		ok := len(a.queue) > 0
		if ok {
			r = a.queue[0]
			a.queue = a.queue[1:]
		}
		a.mu.Unlock()
		if !ok {
			select {
			case <-a.kick:
				continue
			case <-c.starting.Done(): // Close, or Drain: nothing starts any more
				return
			}
		}
		c.prefetchOne(r)
		a.handled.Add(1)
	}
}

// prefetchOne fetches what is missing of the first r.n bytes of r.k.
func (c *Cache) prefetchOne(r prefetchReq) {
	cs := c.cfg.ChunkSize
	want := (r.n + cs - 1) / cs
	first, _ := c.store.Missing(r.k, 0, want)
	if first < 0 {
		c.walkFile(r.k, nil, true) // cached already, its headers maybe not
		return
	}
	f, err := c.file(r.k)
	if err != nil {
		return
	}
	c.store.Use(r.k)
	s, release, mine := c.fetchLow(c.starting, f, first, want)
	if s == nil {
		return
	}
	if mine {
		c.pre.files.Add(1)
		c.pre.bytes.Add(r.n)
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.waitPast(c.ctx, s, want-1)
		release()
		c.walkFile(r.k, nil, true)
	}()
}

// fetchLow starts a low-priority stream for chunks [i, want) of f: it
// waits for a spare slot and reserves room for the chunks in the cache.
// It returns nil when ctx ends first or the cache has no room; release
// gives the reserved room back once the stream is done; mine is false when
// a stream already on its way (a reader's) serves the chunks instead.
func (c *Cache) fetchLow(ctx context.Context, f *file, i, want int64) (s *stream, release func(), mine bool) {
	room := (want - i) * c.cfg.ChunkSize
	a := &c.pre
	a.mu.Lock()
	u := c.store.Usage()
	if u.Used+a.reserved+room > u.Limit {
		a.mu.Unlock()
		return nil, nil, false
	}
	a.reserved += room
	a.mu.Unlock()
	release = func() {
		a.mu.Lock()
		a.reserved -= room
		a.mu.Unlock()
	}
	if !c.slots.waitSpare(ctx) {
		release()
		return nil, nil, false
	}
	tok := &heldSlot{}
	s = c.streamFor(f, i, plan{want: want, held: tok}, 0)
	if s == nil {
		c.slots.release()
		release()
		return nil, nil, false
	}
	f.mu.Lock()
	mine = s.held == tok
	f.mu.Unlock()
	if !mine {
		c.slots.release() // a stream on its way there already serves it
	}
	return s, release, mine
}

// waitPast waits until s has read chunk i, or ended, or ctx has.
func (c *Cache) waitPast(ctx context.Context, s *stream, i int64) {
	f := s.f
	for {
		f.mu.Lock()
		done, progress := s.done || s.next > i, s.progress
		f.mu.Unlock()
		if done {
			return
		}
		select {
		case <-progress:
		case <-ctx.Done():
			return
		}
	}
}

// acquire takes the slot s runs in, unless its creator took it already.
func (c *Cache) acquire(s *stream) error {
	if s.held != nil {
		return nil
	}
	return c.slots.acquire(c.starting)
}

// waitSpare takes a slot for a low-priority stream: one beyond the one
// kept for readers, while no reader waits. It reports false when ctx ends
// first, or when the limit leaves nothing beyond readers' slot.
func (sl *slots) waitSpare(ctx context.Context) bool {
	for {
		lim := sl.limit()
		if lim < 2 {
			return false
		}
		sl.mu.Lock()
		if sl.held < lim-1 && sl.waiting.Load() == 0 {
			sl.held++
			sl.mu.Unlock()
			return true
		}
		freed := sl.freed
		sl.mu.Unlock()
		select {
		case <-freed:
		case <-time.After(budgetPoll): // the budget can grow, and waiters leave, without a release
		case <-ctx.Done():
			return false
		}
	}
}
