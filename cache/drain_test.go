package cache

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Drain lets a chunk already arriving finish and be stored, and starts
// nothing more: after a reopen, the chunk is served without the remote.
func TestDrainKeepsWhatArrives(t *testing.T) {
	dir := t.TempDir()
	r := newFake()
	k := r.add("/drain", 10*testChunk, 24)
	g := gatedRemote{fakeRemote: r, open: 16 << 10, gate: make(chan struct{})}
	c := openCache(t, dir, g, func(cfg *Config) { cfg.StreamsPerFile = 1; cfg.IdleTimeout = time.Hour })
	p := make([]byte, 2880)
	if _, err := c.ReadAt(context.Background(), k, p, 0); err != nil { // answered from the chunk's first bytes
		t.Fatal(err)
	}
	expect(t, 24, 0, p)
	type result struct{ finished, dropped int }
	drained := make(chan result, 1)
	go func() {
		f, d := c.Drain(time.Minute)
		drained <- result{f, d}
	}()
	eventually(t, "Drain stops new reads", func() bool { return c.draining.Load() })
	close(g.gate)
	var got result
	select {
	case got = <-drained:
	case <-time.After(time.Minute):
		t.Fatal("Drain did not return once the chunk in flight had arrived")
	}
	if got.finished != 1 || got.dropped != 0 {
		t.Fatalf("drain: %+v, want the one chunk finished", got)
	}
	if _, err := c.ReadAt(context.Background(), k, p, 5*testChunk); !errors.Is(err, ErrClosed) {
		t.Fatalf("a read of what is not cached after Drain: %v", err)
	}
	c.Close()
	_, served, active := r.counts()
	if served != testChunk || active != 0 {
		t.Fatalf("the remote served %d bytes (%d streams still open); want the one chunk", served, active)
	}

	c = openCache(t, dir, r, nil)
	if _, err := c.ReadAt(context.Background(), k, p, 100); err != nil {
		t.Fatal(err)
	}
	expect(t, 24, 100, p)
	if st := c.Stats(); st.BytesFetched != 0 || st.Hits != 1 {
		t.Fatalf("after drain and reopen: %+v", st)
	}
}

// A chunk that does not arrive within Drain's bound is dropped cleanly:
// nothing of it is stored, no stream is left, and the count says so.
func TestDrainDropsWhatIsLate(t *testing.T) {
	dir := t.TempDir()
	r := newFake()
	k := r.add("/late", 10*testChunk, 25)
	g := gatedRemote{fakeRemote: r, open: 16 << 10, gate: make(chan struct{})} // never opened
	c := openCache(t, dir, g, func(cfg *Config) { cfg.StreamsPerFile = 1 })
	p := make([]byte, 2880)
	if _, err := c.ReadAt(context.Background(), k, p, 0); err != nil {
		t.Fatal(err)
	}
	finished, dropped := c.Drain(50 * time.Millisecond)
	if finished != 0 || dropped != 1 {
		t.Fatalf("drain: %d finished, %d dropped; want 0 and 1", finished, dropped)
	}
	c.Close()
	if _, _, active := r.counts(); active != 0 {
		t.Fatalf("%d streams left open", active)
	}
	if st := c.Stats(); st.Chunks != 0 {
		t.Fatalf("a chunk cut short was stored: %+v", st)
	}
	c = openCache(t, dir, r, nil)
	if st := c.Stats(); st.Chunks != 0 {
		t.Fatalf("after reopen: %+v", st)
	}
}
