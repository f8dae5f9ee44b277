package cache

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// slots bounds the remote streams open at once: Config.Streams, or what
// Config.Budget says now when it is set, so the engine follows a pool that
// shrank after the server refused a connection. A stream that lingers for
// a follow-up read gives its slot up when someone waits for one and no
// read has extended it within yieldAfter.
type slots struct {
	most    int        // Config.Streams: never more at once
	budget  func() int // the live limit, or nil
	waiting atomic.Int32

	mu    sync.Mutex    // guards held, freed, idle
	held  int           // slots taken
	freed chan struct{} // closed and replaced when a slot is released
	idle  []*stream     // lingering streams, oldest first
}

// budgetPoll is how often a waiter looks at Budget again: the limit can
// grow without a slot being released.
const budgetPoll = 50 * time.Millisecond

func newSlots(most int, budget func() int) *slots {
	return &slots{most: most, budget: budget, freed: make(chan struct{})}
}

// limit returns how many slots may be held now; at least one, so reads go
// on while the budget is momentarily zero.
func (sl *slots) limit() int {
	if sl.budget == nil {
		return sl.most
	}
	return max(1, min(sl.most, sl.budget()))
}

// take takes a slot if one is free, or returns a channel closed when one may be.
func (sl *slots) take() (bool, <-chan struct{}) {
	lim := sl.limit()
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.held < lim {
		sl.held++
		return true, nil
	}
	return false, sl.freed
}

func (sl *slots) acquire(ctx context.Context) error {
	ok, freed := sl.take()
	if ok {
		return nil
	}
	sl.waiting.Add(1)
	defer sl.waiting.Add(-1)
	sl.mu.Lock()
	var victim *stream
	if len(sl.idle) > 0 {
		victim = sl.idle[0]
	}
	sl.mu.Unlock()
	if victim != nil {
		victim.signal() // it gives its slot up unless its reader moves on (yieldAfter)
	}
	var poll <-chan time.Time
	if sl.budget != nil {
		t := time.NewTicker(budgetPoll)
		defer t.Stop()
		poll = t.C
	}
	for {
		select {
		case <-freed:
		case <-poll:
		case <-ctx.Done():
			return ctx.Err()
		}
		if ok, freed = sl.take(); ok {
			return nil
		}
	}
}

func (sl *slots) release() {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	sl.held--
	close(sl.freed)
	sl.freed = make(chan struct{})
}

// inUse returns the slots held now.
func (sl *slots) inUse() int {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return sl.held
}

// contended reports whether a stream waits for a slot.
func (sl *slots) contended() bool { return sl.waiting.Load() > 0 }

func (sl *slots) setIdle(s *stream, idle bool) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	sl.idle = slices.DeleteFunc(sl.idle, func(x *stream) bool { return x == s })
	if idle {
		sl.idle = append(sl.idle, s)
	}
}

// yieldAfter is how long a stream whose plan is met keeps its slot while
// another stream waits for one. A reader still reading extends its stream
// within a few milliseconds (what it reads is on local disk by then); a
// stream given up is a RETR cut short, whose buffered bytes the server
// sent for nothing, and a new one for the reader, round trips later.
const yieldAfter = 25 * time.Millisecond
