package cache

import "time"

// Drain readies the cache for an unmount without losing what is on its
// way: chunks already arriving finish and are stored, for up to bound;
// no new chunk or stream starts. When the bound passes, the chunks still
// arriving are dropped (nothing half of one is stored) and their streams
// stopped. It returns the chunks stored meanwhile and the ones dropped.
// Reads of what is not cached fail with ErrClosed from then on; Close
// still releases the cache.
func (c *Cache) Drain(bound time.Duration) (finished, dropped int) {
	c.mu.Lock()
	if c.closed || c.draining.Swap(true) {
		c.mu.Unlock()
		return 0, 0
	}
	files := c.files.Values()
	c.mu.Unlock()
	c.stopStarting()
	for _, f := range files {
		f.wakeAll() // a lingering stream ends now, not at its idle timeout
	}
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		for _, f := range files {
			dropped += f.arriving()
		}
		c.cancel()
		<-done
	}
	return int(c.committed.Load()), dropped
}

// wakeAll wakes every stream of f, so each looks at what it should do.
func (f *file) wakeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.streams {
		s.signal()
	}
}

// arriving counts the streams of f in the middle of a chunk.
func (f *file) arriving() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.streams {
		if s.buf != nil {
			n++
		}
	}
	return n
}
