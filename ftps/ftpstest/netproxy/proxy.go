// Package netproxy is a TCP proxy that puts a long network path between a
// client and a server on loopback, and breaks it on demand.
//
// The kernel these tests run on has no netem, and an FTPS control channel
// is encrypted, so a proxy cannot rewrite the passive address a server
// announces. Instead the proxy listens on another loopback address (say
// 127.0.0.3) on the control port and on every port of the server's passive
// range, forwards each to the same port on the server, and the server is
// told to announce the proxy's address (vsftpd: pasv_address). Clients then
// reach everything through the proxy.
//
// Each direction of each connection is a delay line with a window: a byte
// read at t is delivered at t+Delay, and its place in the window comes back
// one Delay after delivery, so a single stream runs at about
// Window/(2*Delay), as one TCP stream over a long path does. A proxy that
// buffered without limit would hide exactly that cost. A new connection
// pays for its handshake too: the proxy dials the server one Delay after
// accepting, and the client's first bytes arrive three Delays after it
// connected, so every FTP data connection costs the round trip it would.
package netproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes the path to emulate.
type Config struct {
	ListenHost string        // where the proxy listens, e.g. "127.0.0.3"
	TargetHost string        // where the server listens, e.g. "127.0.0.1"
	Ports      []int         // ports forwarded one to one; Ports[0] is the control port
	Delay      time.Duration // one-way delay in each direction; a round trip is 2*Delay
	Window     int           // bytes in flight per connection and direction; 0 means no window
	Rate       int64         // bytes per second over all connections; 0 means no cap
	Log        *slog.Logger  // where failures to reach the target are logged; nil is silent
}

// Stats counts what the proxy has carried since Start.
type Stats struct {
	Accepted int64 // connections accepted and forwarded
	Refused  int64 // connections reset at once because the proxy was down or closing
	Open     int   // connections open now
	ToServer int64 // bytes delivered from clients to the server
	ToClient int64 // bytes delivered from the server to clients
}

// Proxy is a running proxy. Its methods are safe for concurrent use.
type Proxy struct {
	cfg       Config
	listeners []*net.TCPListener
	ctx       context.Context // canceled by Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup // accept loops and links

	delay *delayVar
	stall gate
	rate  *bucket

	accepted, refused  atomic.Int64
	toServer, toClient atomic.Int64
	firstCut           atomic.Int64 // CutFirstAfter's byte count; 0: none armed

	mu     sync.Mutex         // guards links, cuts, down and closed
	links  map[*link]struct{} // open connections
	cuts   map[int][]int64    // CutAfter budgets by port, oldest first
	down   bool
	closed bool
}

// Start listens on every port of cfg.Ports at cfg.ListenHost and forwards
// connections until Close.
func Start(cfg Config) (*Proxy, error) {
	if len(cfg.Ports) == 0 {
		return nil, errors.New("netproxy: no ports")
	}
	if cfg.ListenHost == "" || cfg.TargetHost == "" {
		return nil, errors.New("netproxy: listen and target hosts are required")
	}
	cfg.Ports = append([]int(nil), cfg.Ports...)
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		cfg:    cfg,
		ctx:    ctx,
		cancel: cancel,
		delay:  newDelayVar(cfg.Delay),
		rate:   newBucket(cfg.Rate),
		links:  make(map[*link]struct{}),
		cuts:   make(map[int][]int64),
	}
	seen := make(map[int]bool, len(cfg.Ports))
	for _, port := range cfg.Ports {
		if port <= 0 || port > 65535 || seen[port] {
			p.closeListeners()
			cancel()
			return nil, fmt.Errorf("netproxy: bad or repeated port %d", port)
		}
		seen[port] = true
		addr := net.JoinHostPort(cfg.ListenHost, strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			p.closeListeners()
			cancel()
			return nil, fmt.Errorf("netproxy: listen %s: %w", addr, err)
		}
		p.listeners = append(p.listeners, l.(*net.TCPListener))
	}
	for i, l := range p.listeners {
		p.wg.Add(1)
		go p.accept(l, cfg.Ports[i])
	}
	return p, nil
}

func (p *Proxy) closeListeners() error {
	var errs []error
	for _, l := range p.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Addr is ListenHost:port, where a client connects to reach port.
func (p *Proxy) Addr(port int) string {
	return net.JoinHostPort(p.cfg.ListenHost, strconv.Itoa(port))
}

// Close stops listening, resets every connection and returns once every
// goroutine the proxy started has ended.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	links := p.snapshot()
	p.mu.Unlock()

	p.cancel()
	err := p.closeListeners()
	for _, l := range links {
		l.teardown(true)
	}
	p.wg.Wait()
	return err
}

// Stats returns the counters so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	open := len(p.links)
	p.mu.Unlock()
	return Stats{
		Accepted: p.accepted.Load(),
		Refused:  p.refused.Load(),
		Open:     open,
		ToServer: p.toServer.Load(),
		ToClient: p.toClient.Load(),
	}
}

// snapshot lists the open links; p.mu must be held.
func (p *Proxy) snapshot() []*link {
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	return links
}

func (p *Proxy) forget(l *link) {
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

func (p *Proxy) log(msg string, args ...any) {
	if p.cfg.Log != nil {
		p.cfg.Log.Info(msg, args...)
	}
}

func (p *Proxy) accept(ln *net.TCPListener, port int) {
	defer p.wg.Done()
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || p.ctx.Err() != nil {
				return
			}
			// Out of descriptors or a connection aborted in the backlog:
			// wait a little rather than spin.
			if !sleep(p.ctx, 10*time.Millisecond) {
				return
			}
			continue
		}
		p.admit(c, port)
	}
}

func (p *Proxy) admit(c *net.TCPConn, port int) {
	p.mu.Lock()
	if p.closed || p.down {
		p.mu.Unlock()
		p.refused.Add(1)
		_ = c.SetLinger(0)
		_ = c.Close()
		return
	}
	budget := p.takeCut(port)
	ctx, cancel := context.WithCancel(p.ctx)
	l := &link{p: p, port: port, client: c, ctx: ctx, cancel: cancel}
	p.links[l] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()
	p.accepted.Add(1)
	go p.serve(l, budget)
}
