package netproxy

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"
)

// link is one client connection and the server connection it was
// forwarded to.
type link struct {
	p      *Proxy
	port   int
	client *net.TCPConn
	ctx    context.Context // canceled when the link ends
	cancel context.CancelFunc

	mu     sync.Mutex   // guards server and ended
	server *net.TCPConn // nil until dialled
	ended  bool
}

// teardown ends the link once: with reset, both peers see a reset (RST)
// rather than an orderly close, as a broken path or a dead peer shows.
func (l *link) teardown(reset bool) {
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		return
	}
	l.ended = true
	server := l.server
	l.mu.Unlock()
	l.cancel()
	for _, c := range []*net.TCPConn{l.client, server} {
		if c == nil {
			continue
		}
		if reset {
			_ = c.SetLinger(0)
		}
		_ = c.Close()
	}
}

// attach records the dialled server connection; false (and the connection
// closed) when the link ended while dialling.
func (l *link) attach(c *net.TCPConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		_ = c.SetLinger(0)
		_ = c.Close()
		return false
	}
	l.server = c
	return true
}

// serve runs the link until both directions have finished or it is torn
// down. The emulated handshake costs what a real one does: the server
// sees the connection one delay after the client made it, and the
// client's first bytes reach the server no sooner than three delays after
// it connected (SYN, SYN-ACK, then the data).
func (p *Proxy) serve(l *link, budget int64) {
	defer p.wg.Done()
	defer p.forget(l)
	start := time.Now()
	d, _ := p.delay.get()
	up := newLine(l, false, &p.cfg, start.Add(2*d), -1)
	down := newLine(l, true, &p.cfg, start, budget)
	up.src, down.dst = l.client, l.client

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(up.read)

	if !sleep(l.ctx, d) {
		return
	}
	dialer := net.Dialer{Timeout: 10 * time.Second}
	target := net.JoinHostPort(p.cfg.TargetHost, strconv.Itoa(l.port))
	c, err := dialer.DialContext(l.ctx, "tcp", target)
	if err != nil {
		p.log("netproxy: dial failed", "target", target, "err", err)
		l.teardown(true)
		return
	}
	server := c.(*net.TCPConn)
	if !l.attach(server) {
		return
	}
	up.dst, down.src = server, server
	wg.Go(up.write)
	wg.Go(down.read)
	wg.Go(down.write)
	wg.Wait()
	l.teardown(false)
}

// sleep waits d; false if ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
