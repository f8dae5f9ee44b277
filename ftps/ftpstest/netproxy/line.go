package netproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// chunkSize is the most one read takes off a socket.
const chunkSize = 64 << 10

// unlimitedQueue caps what one direction holds when Config.Window is 0:
// no window is emulated, but a reader that never reads must not make the
// proxy buffer without end.
const unlimitedQueue = 64 << 20

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// end says how a direction finishes after its last data chunk.
type end int

const (
	endNone  end = iota // a data chunk
	endEOF              // the sender half-closed: half-close the receiver
	endReset            // the sender failed or reset: reset the whole link
	endCut              // a CutAfter budget ran out: reset the whole link
)

// chunk is bytes read at one moment, due at at+delay.
type chunk struct {
	buf  []byte
	pool *[]byte // the pooled buffer behind buf, nil when buf was copied
	at   time.Time
	end  end
}

// ack frees n window bytes once one delay has passed after sent: the time
// the acknowledgement of a delivered chunk takes to travel back.
type ack struct {
	sent time.Time
	n    int
}

// line carries one direction of a link across the emulated path: read
// pulls bytes off src while the window has room and stamps them, write
// hands each chunk to dst one delay later, and its window bytes come back
// one more delay after that. One stream therefore moves about Window bytes
// per round trip, as a TCP stream over a long path does.
type line struct {
	l         *link
	toClient  bool
	src, dst  *net.TCPConn
	limit     int       // bytes in flight allowed
	ackDelay  bool      // window bytes return one delay after delivery, not at once
	notBefore time.Time // no chunk is stamped earlier (the handshake's cost)
	budget    int64     // bytes left before a cut; negative: no cut
	carried   int64     // bytes read from src so far

	mu       sync.Mutex // guards queue, acks, inflight
	queue    []chunk
	acks     []ack
	inflight int

	queued chan struct{} // capacity 1: the queue grew
	acked  chan struct{} // capacity 1: acks grew
}

func newLine(l *link, toClient bool, cfg *Config, notBefore time.Time, budget int64) *line {
	ln := &line{
		l:         l,
		toClient:  toClient,
		limit:     cfg.Window,
		ackDelay:  true,
		notBefore: notBefore,
		budget:    budget,
		queued:    make(chan struct{}, 1),
		acked:     make(chan struct{}, 1),
	}
	if ln.limit <= 0 {
		ln.limit = unlimitedQueue
		ln.ackDelay = false
	}
	return ln
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (ln *line) stamp() time.Time {
	now := time.Now()
	if now.Before(ln.notBefore) {
		return ln.notBefore
	}
	return now
}

func (ln *line) push(c chunk) {
	ln.mu.Lock()
	ln.queue = append(ln.queue, c)
	ln.inflight += len(c.buf)
	ln.mu.Unlock()
	kick(ln.queued)
}

// read is the sending half of the line; it ends after queuing an end.
func (ln *line) read() {
	p, done := ln.l.p, ln.l.ctx.Done()
	for {
		if ln.budget == 0 {
			ln.push(chunk{at: ln.stamp(), end: endCut})
			return
		}
		if !p.stall.wait(done) {
			return
		}
		room, ok := ln.room()
		if !ok {
			return
		}
		room = min(room, chunkSize)
		if ln.budget > 0 {
			room = int(min(int64(room), ln.budget))
		}
		bp := chunkPool.Get().(*[]byte)
		n, err := ln.src.Read((*bp)[:room])
		if n > 0 {
			c := chunk{buf: (*bp)[:n], pool: bp, at: ln.stamp()}
			if n < chunkSize {
				// Keep only what was read, so memory follows the window.
				c.buf, c.pool = append([]byte(nil), (*bp)[:n]...), nil
				chunkPool.Put(bp)
			}
			ln.push(c)
			if ln.budget > 0 {
				ln.budget -= int64(n)
			}
			ln.carried += int64(n)
			if ln.toClient && p.claimFirstCut(ln.l.port, ln.carried) {
				ln.push(chunk{at: ln.stamp(), end: endCut})
				return
			}
		} else {
			chunkPool.Put(bp)
		}
		if err != nil {
			e := endReset
			if errors.Is(err, io.EOF) {
				e = endEOF
			}
			ln.push(chunk{at: ln.stamp(), end: e})
			return
		}
	}
}

// room waits until the window has room and returns how much; false when
// the link ends first.
func (ln *line) room() (int, bool) {
	p, done := ln.l.p, ln.l.ctx.Done()
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		d, changed := p.delay.get()
		if !ln.ackDelay {
			d = 0
		}
		now := time.Now()
		ln.mu.Lock()
		i := 0
		for ; i < len(ln.acks) && !now.Before(ln.acks[i].sent.Add(d)); i++ {
			ln.inflight -= ln.acks[i].n
		}
		ln.acks = ln.acks[i:]
		room := ln.limit - ln.inflight
		var next time.Time
		if len(ln.acks) > 0 {
			next = ln.acks[0].sent.Add(d)
		}
		ln.mu.Unlock()
		if room > 0 {
			return room, true
		}
		var wake <-chan time.Time
		if !next.IsZero() {
			if t == nil {
				t = time.NewTimer(next.Sub(now))
			} else {
				t.Reset(next.Sub(now))
			}
			wake = t.C
		}
		select {
		case <-wake:
		case <-ln.acked:
		case <-changed:
		case <-done:
			return 0, false
		}
	}
}

// next waits for the oldest queued chunk; false when the link ends first.
func (ln *line) next() (chunk, bool) {
	for {
		ln.mu.Lock()
		if len(ln.queue) > 0 {
			c := ln.queue[0]
			ln.queue[0] = chunk{}
			ln.queue = ln.queue[1:]
			ln.mu.Unlock()
			return c, true
		}
		ln.mu.Unlock()
		select {
		case <-ln.queued:
		case <-ln.l.ctx.Done():
			return chunk{}, false
		}
	}
}

// due waits until one delay after at; false when the link ends first.
func (ln *line) due(at time.Time, t *time.Timer) bool {
	p, done := ln.l.p, ln.l.ctx.Done()
	for {
		d, changed := p.delay.get()
		wait := time.Until(at.Add(d))
		if wait <= 0 {
			return true
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-changed:
		case <-done:
			return false
		}
	}
}

// write is the receiving half of the line.
func (ln *line) write() {
	p, done := ln.l.p, ln.l.ctx.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		c, ok := ln.next()
		if !ok || !ln.due(c.at, t) || !p.stall.wait(done) {
			return
		}
		switch c.end {
		case endEOF:
			if err := ln.dst.CloseWrite(); err != nil {
				ln.l.teardown(true)
			}
			return
		case endReset:
			ln.l.teardown(true)
			return
		case endCut:
			// Let what was written reach the peer before the reset
			// throws away whatever the kernel still holds.
			drain(ln.dst, done)
			ln.l.teardown(true)
			return
		}
		if !p.rate.take(len(c.buf), done) {
			return
		}
		n, err := ln.dst.Write(c.buf)
		if ln.toClient {
			p.toClient.Add(int64(n))
		} else {
			p.toServer.Add(int64(n))
		}
		size := len(c.buf)
		if c.pool != nil {
			chunkPool.Put(c.pool)
		}
		if err != nil {
			ln.l.teardown(true)
			return
		}
		ln.mu.Lock()
		ln.acks = append(ln.acks, ack{sent: time.Now(), n: size})
		ln.mu.Unlock()
		kick(ln.acked)
	}
}
