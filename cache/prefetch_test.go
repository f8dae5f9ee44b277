package cache

import (
	"fmt"
	"testing"
	"time"
)

// smallFiles adds n files of size bytes to r.
func smallFiles(r *fakeRemote, n int, size int64) []Key {
	var ks []Key
	for i := range n {
		ks = append(ks, r.add(fmt.Sprintf("/stage/f%03d.fits", i), size, uint64(100+i)))
	}
	return ks
}

func cached(c *Cache, k Key) bool {
	first, _ := c.store.Missing(k, 0, (k.Size+c.cfg.ChunkSize-1)/c.cfg.ChunkSize)
	return first < 0
}

// waitIdle waits until every prefetch asked for was dealt with, and no
// stream or walk runs.
func waitIdle(t *testing.T, c *Cache) {
	t.Helper()
	waitFor(t, "streams and prefetches done", func() bool {
		c.pre.mu.Lock()
		reserved := c.pre.reserved
		c.pre.mu.Unlock()
		return c.pre.handled.Load() == c.pre.asked.Load() && reserved == 0 &&
			c.slots.inUse() == 0 && c.pre.walking.Load() == 0
	})
}

// waitFor polls cond for up to 30 s: a loaded machine may be slow, and a
// condition that never holds is a failure all the same.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}

// quick makes streams close soon after their reader stops.
func quick(cfg *Config) { cfg.IdleTimeout = 20 * time.Millisecond }

// Files prefetched are then read from the cache: one stream each, none
// for the reader, and every byte right.
func TestPrefetchThenRead(t *testing.T) {
	r := newFake()
	r.openDelay = 5 * time.Millisecond // a round trip
	ks := smallFiles(r, 12, 3*testChunk+77)
	c := openCache(t, t.TempDir(), r, nil)
	for _, k := range ks {
		c.Prefetch(k, k.Size)
	}
	waitFor(t, "all files prefetched", func() bool {
		for _, k := range ks {
			if !cached(c, k) {
				return false
			}
		}
		return true
	})
	waitIdle(t, c)
	opened, served, _ := r.counts()
	if opened != len(ks) || served != int64(len(ks))*ks[0].Size {
		t.Fatalf("prefetch opened %d streams, served %d bytes; want %d, %d", opened, served, len(ks), int64(len(ks))*ks[0].Size)
	}
	before := c.Stats()
	for i, k := range ks {
		readSeq(t, c, k, uint64(100+i), 40_000)
	}
	st := c.Stats()
	if st.Misses != before.Misses || st.BytesFetched != before.BytesFetched {
		t.Fatalf("reads after the prefetch fetched: before %+v, after %+v", before, st)
	}
	if files, bytes, _ := c.PrefetchStats(); files != int64(len(ks)) || bytes != int64(len(ks))*ks[0].Size {
		t.Errorf("PrefetchStats %d files, %d bytes", files, bytes)
	}
}

// A prefetch of n bytes fetches the chunks that hold them, no more.
func TestPrefetchHead(t *testing.T) {
	r := newFake()
	k := r.add("/stage/big.fits", 50*testChunk, 7)
	c := openCache(t, t.TempDir(), r, nil)
	c.Prefetch(k, testChunk+1)
	waitFor(t, "head prefetched", func() bool { f, _ := c.store.Missing(k, 0, 2); return f < 0 })
	waitIdle(t, c)
	if f, _ := c.store.Missing(k, 2, 50); f != 2 {
		t.Fatalf("chunks past the head cached (first missing %d)", f)
	}
	if _, served, _ := r.counts(); served > 2*testChunk+linkBuffer {
		t.Fatalf("served %d bytes for a head of two chunks", served)
	}
}

// Prefetch is low priority: it never holds the last slot, and never more
// streams than Streams-1 at once; with one stream it does nothing.
func TestPrefetchLeavesReadersASlot(t *testing.T) {
	for _, streams := range []int{1, 2, 4} {
		t.Run(fmt.Sprint(streams), func(t *testing.T) {
			r := newFake()
			r.openDelay = 10 * time.Millisecond
			ks := smallFiles(r, 16, testChunk)
			c := openCache(t, t.TempDir(), r, func(cfg *Config) { cfg.Streams = streams })
			for _, k := range ks {
				c.Prefetch(k, k.Size)
			}
			if streams == 1 {
				waitIdle(t, c)
				if opened, _, _ := r.counts(); opened != 0 {
					t.Fatalf("prefetch with one stream opened %d", opened)
				}
				return
			}
			waitFor(t, "all prefetched", func() bool { return cached(c, ks[len(ks)-1]) })
			waitIdle(t, c)
			r.mu.Lock()
			most := r.maxActive
			r.mu.Unlock()
			if most > streams-1 {
				t.Fatalf("%d prefetch streams at once, want at most %d", most, streams-1)
			}
		})
	}
}

// While a reader waits for a slot, no prefetch starts.
func TestPrefetchYieldsToWaitingReaders(t *testing.T) {
	r := newFake()
	r.openDelay = 10 * time.Millisecond
	ks := smallFiles(r, 8, testChunk)
	c := openCache(t, t.TempDir(), r, func(cfg *Config) { cfg.Streams = 2 })
	c.slots.waiting.Add(1) // a reader in line
	for _, k := range ks {
		c.Prefetch(k, k.Size)
	}
	waitFor(t, "the prefetcher took the first request", func() bool {
		c.pre.mu.Lock()
		defer c.pre.mu.Unlock()
		return len(c.pre.queue) == len(ks)-1
	})
	for range 10 { // budgetPoll apart: the prefetcher looks again each time
		time.Sleep(budgetPoll)
		if opened, _, _ := r.counts(); opened != 0 {
			t.Fatalf("a prefetch opened a stream while a reader waited")
		}
	}
	c.slots.waiting.Add(-1)
	waitFor(t, "prefetches go on", func() bool { return cached(c, ks[len(ks)-1]) })
}

// A reader of a file being prefetched joins the prefetch's stream.
func TestReaderJoinsPrefetch(t *testing.T) {
	r := newFake()
	r.openDelay = 30 * time.Millisecond
	k := r.add("/stage/a.fits", 4*testChunk, 9)
	c := openCache(t, t.TempDir(), r, nil)
	c.Prefetch(k, k.Size)
	waitFor(t, "prefetch stream started", func() bool {
		f, err := c.file(k)
		if err != nil {
			return false
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.streams) == 1
	})
	readSeq(t, c, k, 9, 10_000)
	if opened, served, _ := r.counts(); opened != 1 || served != k.Size {
		t.Fatalf("reader beside a prefetch: %d streams, %d bytes; want 1, %d", opened, served, k.Size)
	}
}

// Prefetch fills only the room the cache has free: it never evicts, so
// the chunks a reader holds stay, and the bound holds.
func TestPrefetchNeverEvicts(t *testing.T) {
	r := newFake()
	const limit = 10 * testChunk
	st := newMemStore(testChunk, limit)
	c := engineOver(t, st, r, quick)
	reading := r.add("/stage/reading.fits", 6*testChunk, 1)
	readSeq(t, c, reading, 1, 50_000)
	ks := smallFiles(r, 10, testChunk)
	for _, k := range ks {
		c.Prefetch(k, k.Size)
	}
	waitIdle(t, c)
	if !cached(c, reading) {
		t.Fatal("prefetch evicted a chunk of the file being read")
	}
	n := 0
	for _, k := range ks {
		if cached(c, k) {
			n++
		}
	}
	// Room is reserved until a prefetch's stream is done, a moment after
	// its chunk is stored: a prefetch that looks then finds less room
	// than there is, and is dropped. So at most the 4 chunks of free room.
	if u := st.Usage(); u.Used > u.Limit || n < 1 || n > 4 {
		t.Fatalf("used %d of %d, %d files prefetched; want within the bound, 1 to 4 (the free room)", u.Used, u.Limit, n)
	}
}

// Closing the cache, or forgetting a directory, in the middle of
// prefetches stops them: every stream ends closed, every slot is given
// back, and reads after a Forget get the right bytes.
func TestPrefetchCancelled(t *testing.T) {
	for _, how := range []string{"close", "drain", "forget"} {
		t.Run(how, func(t *testing.T) {
			r := newFake()
			r.openDelay = 5 * time.Millisecond
			r.bytesPerSec = 2 << 20 // slow: prefetches are in flight when cancelled
			ks := smallFiles(r, 12, 2*testChunk)
			c := openCache(t, t.TempDir(), r, quick)
			for _, k := range ks {
				c.Prefetch(k, k.Size)
			}
			waitFor(t, "prefetches in flight", func() bool { _, _, active := r.counts(); return active > 0 })
			switch how {
			case "close":
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
			case "drain":
				// In flight, a prefetch finishes; none starts. A Drain
				// waiting on the prefetcher would take its whole bound.
				drained := make(chan struct{})
				go func() {
					c.Drain(time.Hour)
					close(drained)
				}()
				waitFor(t, "Drain returned", func() bool {
					select {
					case <-drained:
						return true
					default:
						return false
					}
				})
				opened, _, _ := r.counts()
				c.Prefetch(ks[len(ks)-1], ks[0].Size)
				if again, _, _ := r.counts(); again != opened || c.pre.asked.Load() != int64(len(ks)) {
					t.Fatal("a prefetch asked for after Drain was queued or started")
				}
			case "forget":
				if err := c.Forget("/stage"); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "streams closed", func() bool { _, _, active := r.counts(); return active == 0 || how == "forget" })
			if how != "forget" {
				if n := c.slots.inUse(); n != 0 {
					t.Fatalf("%d slots held after %s", n, how)
				}
				return
			}
			r.mu.Lock()
			r.bytesPerSec = 0
			r.mu.Unlock()
			for i, k := range ks {
				readSeq(t, c, k, uint64(100+i), 30_000)
			}
			waitIdle(t, c)
			if _, _, active := r.counts(); active != 0 {
				t.Fatalf("%d streams open when idle", active)
			}
		})
	}
}

func TestPrefetchIgnoresEmptyAndCached(t *testing.T) {
	r := newFake()
	k := r.add("/stage/a.fits", 2*testChunk, 3)
	c := openCache(t, t.TempDir(), r, quick)
	readSeq(t, c, k, 3, 1<<20)
	c.Prefetch(k, k.Size)
	c.Prefetch(Key{Path: "/stage/empty", ModTime: time.Unix(1, 0)}, 100)
	c.Prefetch(k, 0)
	waitIdle(t, c)
	if opened, _, _ := r.counts(); opened != 1 {
		t.Fatalf("%d streams; want only the reader's", opened)
	}
}
