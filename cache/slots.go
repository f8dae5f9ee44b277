package cache

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// slots bounds the remote streams open at once. A stream that lingers for
// a follow-up read gives its slot up when someone waits for one and no read
// has extended it within yieldAfter.
type slots struct {
	sem     chan struct{}
	waiting atomic.Int32

	mu   sync.Mutex // guards idle
	idle []*stream  // lingering streams, oldest first
}

func (sl *slots) acquire(ctx context.Context) error {
	select {
	case sl.sem <- struct{}{}:
		return nil
	default:
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
	select {
	case sl.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (sl *slots) release() { <-sl.sem }

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
