package netproxy

import (
	"sync"
	"time"
)

// delayVar is the one-way delay, changeable while connections wait on it:
// a waiter that sleeps toward a deadline computed from the old value must
// wake and recompute, or a delay cut from 30 s to 0 would still cost 30 s.
type delayVar struct {
	mu      sync.Mutex    // guards d and changed
	d       time.Duration // current one-way delay
	changed chan struct{} // closed and replaced on every set
}

func newDelayVar(d time.Duration) *delayVar {
	return &delayVar{d: max(d, 0), changed: make(chan struct{})}
}

// get returns the delay and a channel that closes when it next changes.
func (v *delayVar) get() (time.Duration, <-chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.d, v.changed
}

func (v *delayVar) set(d time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.d = max(d, 0)
	close(v.changed)
	v.changed = make(chan struct{})
}

// gate holds every pump while shut (Stall).
type gate struct {
	mu   sync.Mutex    // guards shut
	shut chan struct{} // non-nil while shut; closed when opened again
}

func (g *gate) set(shut bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case shut && g.shut == nil:
		g.shut = make(chan struct{})
	case !shut && g.shut != nil:
		close(g.shut)
		g.shut = nil
	}
}

// wait returns once the gate is open (true) or done closes (false).
func (g *gate) wait(done <-chan struct{}) bool {
	g.mu.Lock()
	ch := g.shut
	g.mu.Unlock()
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	case <-done:
		return false
	}
}

// bucket is a token bucket shared by every direction of every connection.
// A taker reserves its bytes at once and sleeps off any debt, so takers are
// served in the order they arrive and none starves.
type bucket struct {
	rate  float64 // bytes per second; 0 means no limit
	burst float64 // most tokens saved up while idle

	mu     sync.Mutex // guards tokens and last
	tokens float64    // may go negative: debt the next takers sleep off
	last   time.Time
}

func newBucket(rate int64) *bucket {
	b := &bucket{rate: float64(max(rate, 0))}
	// A tenth of a second of traffic, so a burst after idling stays short.
	b.burst = max(b.rate/10, 1)
	b.tokens = b.burst
	b.last = time.Now()
	return b
}

// take waits until n bytes may pass; false if done closed first.
func (b *bucket) take(n int, done <-chan struct{}) bool {
	if b.rate == 0 {
		return true
	}
	b.mu.Lock()
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+b.rate*now.Sub(b.last).Seconds())
	b.last = now
	b.tokens -= float64(n)
	var wait time.Duration
	if b.tokens < 0 {
		wait = time.Duration(-b.tokens / b.rate * float64(time.Second))
	}
	b.mu.Unlock()
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
