package ftps

import (
	"context"
	"errors"
	"sync"
	"time"
)

// tooManyError is a server's "421 too many connections" at connect time.
type tooManyError struct{ msg string }

func (e *tooManyError) Error() string { return "server refused another connection: 421 " + e.msg }

// get hands out a logged-in control connection: an idle one if there is
// one, a new one while fewer than the limit exist, or the next one released.
// reused reports an idle one.
func (c *Client) get(ctx context.Context) (cn *conn, reused bool, err error) {
	return c.take(ctx, true)
}

// errNoRoom is take's answer, when told not to wait, to a pool at its limit.
var errNoRoom = errors.New("every connection the pool may hold is in use")

// take is get; unless wait, it returns errNoRoom rather than wait for a
// connection to be released.
func (c *Client) take(ctx context.Context, wait bool) (cn *conn, reused bool, err error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, false, errClosed
		}
		if len(c.idle) > 0 {
			cn := c.pickIdleLocked()
			c.busy++
			c.mu.Unlock()
			return cn, true, nil
		}
		// A connection back in a round trip beats a new one, some ten
		// round trips away.
		if c.open < c.limit && !(wait && c.readying > 0) {
			c.open++
			c.busy++
			c.mu.Unlock()
			cn, err := c.dial(ctx)
			if err == nil {
				return cn, false, nil
			}
			c.mu.Lock()
			c.open--
			c.busy--
			var tm *tooManyError
			if errors.As(err, &tm) && c.open > 0 {
				// The server caps connections per user: work with what it accepts.
				if c.limit > c.open {
					c.limit = c.open
					c.shrunkAt = time.Now()
					c.log.Warn("server refused another connection; pool shrunk",
						"host", c.cfg.Host, "max_conns", c.limit, "reply", tm.msg)
				}
				c.mu.Unlock()
				continue
			}
			c.broadcastLocked()
			c.mu.Unlock()
			return nil, false, err
		}
		wake := c.wake
		c.mu.Unlock()
		if !wait {
			return nil, false, errNoRoom
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// pickIdleLocked takes the idle connection whose data connection made
// ahead is the oldest: its TLS ClientHello has most likely reached the
// server, so the transfer command is not left waiting for it there (a
// connection made a moment ago is still a round trip from the server).
// Without one made ahead, the most recently used: the least likely to
// have timed out.
func (c *Client) pickIdleLocked() *conn {
	pick := len(c.idle) - 1
	var oldest time.Time
	for i, cn := range c.idle {
		cn.mu.Lock()
		r := cn.ready
		cn.mu.Unlock()
		if r != nil && (oldest.IsZero() || r.made.Before(oldest)) {
			pick, oldest = i, r.made
		}
	}
	cn := c.idle[pick]
	c.idle = append(c.idle[:pick], c.idle[pick+1:]...)
	return cn
}

// put returns a healthy connection to the pool after use.
func (c *Client) put(cn *conn) { c.release(cn, false) }

// release is put; with wait, it returns once the connection is back in the
// pool rather than at once.
func (c *Client) release(cn *conn, wait bool) {
	cn.mu.Lock()
	cn.lastUsed = time.Now()
	cn.capture = nil
	cn.tookReady = false
	cn.data = nil
	cn.mu.Unlock()
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.preparing.Add(1)
		c.readying++
	}
	c.mu.Unlock()
	if closed {
		c.requeue(cn)
		return
	}
	// Back in the pool once its next data connection is made: one round
	// trip, which the next operation would otherwise spend on its EPSV.
	back := func() {
		defer c.preparing.Done()
		err := c.prepare(cn)
		c.mu.Lock()
		c.readying--
		c.mu.Unlock()
		if err != nil {
			c.log.Debug("connection lost while making a data connection ahead", "conn", cn.id, "err", err)
			c.discard(cn)
			return
		}
		c.requeue(cn)
	}
	if wait {
		back()
	} else {
		go back()
	}
}

// requeue returns a connection to the pool without counting it as used.
func (c *Client) requeue(cn *conn) {
	c.mu.Lock()
	c.busy--
	if c.closed || c.open > c.limit {
		c.mu.Unlock()
		c.retire(cn)
		return
	}
	c.idle = append(c.idle, cn)
	c.broadcastLocked()
	c.mu.Unlock()
}

// discard drops a connection that saw an error: its reply stream may be out
// of step, so it is never reused.
func (c *Client) discard(cn *conn) {
	c.mu.Lock()
	c.busy--
	c.mu.Unlock()
	c.stats.discarded.Add(1)
	c.retire(cn)
}

// retire closes connections and only then frees their places in the pool,
// so the sockets open never outnumber the limit, not even for a moment.
func (c *Client) retire(conns ...*conn) {
	var wg sync.WaitGroup
	for _, cn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cn.close()
		}()
	}
	wg.Wait()
	c.mu.Lock()
	c.open -= len(conns)
	c.broadcastLocked()
	c.mu.Unlock()
}

// drainIdle closes every idle connection. It follows an idle connection
// found broken: the others, idle as long, most likely went the same way (a
// server restart, a firewall that forgot them), and trying each in turn
// would spend every retry of an operation on dead connections.
func (c *Client) drainIdle() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	if len(idle) == 0 {
		return
	}
	c.log.Debug("idle connections dropped after one was found broken", "conns", len(idle))
	c.stats.discarded.Add(int64(len(idle)))
	c.retire(idle...)
}

// Limit is the number of control connections the pool may hold now:
// MaxConns, or fewer while a server's 421 keeps it shrunk. Whatever sizes
// its own parallelism by the pool (cache streams, listing ahead) follows it.
func (c *Client) Limit() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limit
}

func (c *Client) broadcastLocked() {
	close(c.wake)
	c.wake = make(chan struct{})
}

// tend keeps idle connections warm with NOOP and closes the ones idle too
// long, until the client is closed.
func (c *Client) tend() {
	tick := time.NewTicker(c.cfg.KeepAlive / 2)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		var keep, check, drop []*conn
		now := time.Now()
		for _, cn := range c.idle {
			cn.mu.Lock()
			idle := now.Sub(cn.lastUsed)
			quiet := min(idle, now.Sub(cn.lastPing))
			cn.mu.Unlock()
			switch {
			case idle >= c.cfg.IdleTimeout:
				drop = append(drop, cn)
			case quiet >= c.cfg.KeepAlive:
				check = append(check, cn)
			default:
				keep = append(keep, cn)
			}
		}
		c.idle = keep
		c.busy += len(check)
		// Regrow a limit shrunk by a 421 after a while: the other client may be gone.
		if c.limit < c.cfg.MaxConns && now.Sub(c.shrunkAt) > time.Minute {
			c.limit = c.cfg.MaxConns
		}
		c.mu.Unlock()
		if len(drop) > 0 {
			c.log.Debug("closing idle connections", "conns", len(drop))
			c.retire(drop...)
		}
		for _, cn := range check {
			cn.deadline(c.cfg.Timeout)
			if err := cn.sc.NoOp(); err != nil {
				c.log.Debug("idle connection lost; dropped", "conn", cn.id, "err", err)
				c.discard(cn)
				continue
			}
			cn.mu.Lock()
			cn.lastPing = time.Now()
			cn.mu.Unlock()
			if cn.staleReady(now) {
				cn.dropReady()
			}
			if err := c.prepare(cn); err != nil {
				c.log.Debug("idle connection lost; dropped", "conn", cn.id, "err", err)
				c.discard(cn)
				continue
			}
			c.requeue(cn)
		}
	}
}
