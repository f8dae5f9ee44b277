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

	mu    sync.Mutex      // guards held, queue, freed, idle
	held  int             // slots taken
	queue []chan struct{} // waiters, first come first served; each gets its slot by a send
	freed chan struct{}   // closed and replaced when a slot is released
	idle  []*stream       // lingering streams, oldest first
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

// acquire takes a slot, waiting in line for one when none is free.
func (sl *slots) acquire(ctx context.Context) error {
	lim := sl.limit()
	sl.mu.Lock()
	if sl.held < lim && len(sl.queue) == 0 {
		sl.held++
		sl.mu.Unlock()
		return nil
	}
	mine := make(chan struct{}, 1)
	sl.queue = append(sl.queue, mine)
	var victim *stream
	if len(sl.idle) > 0 {
		victim = sl.idle[0]
	}
	sl.waiting.Add(1) // under the lock: a spare-slot taker sees the line
	sl.mu.Unlock()
	defer sl.waiting.Add(-1)
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
		case <-mine:
			return nil
		case <-poll:
			// The budget may have grown without a slot being released.
			lim := sl.limit()
			sl.mu.Lock()
			if len(sl.queue) > 0 && sl.queue[0] == mine && sl.held < lim {
				sl.queue = sl.queue[1:]
				sl.held++
				sl.mu.Unlock()
				return nil
			}
			sl.mu.Unlock()
		case <-ctx.Done():
			sl.mu.Lock()
			n := len(sl.queue)
			sl.queue = slices.DeleteFunc(sl.queue, func(c chan struct{}) bool { return c == mine })
			handed := len(sl.queue) == n // out of the line already: the slot was sent
			sl.mu.Unlock()
			if handed {
				<-mine
				sl.release()
			}
			return ctx.Err()
		}
	}
}

// release gives a slot up: to the first in line, unless the budget shrank.
func (sl *slots) release() {
	lim := sl.limit()
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if len(sl.queue) > 0 && sl.held <= lim {
		next := sl.queue[0]
		sl.queue = sl.queue[1:]
		next <- struct{}{} // the slot passes on: held stays
	} else {
		sl.held--
	}
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
