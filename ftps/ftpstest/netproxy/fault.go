package netproxy

import "time"

// CutAll resets every open connection, control and data alike, as a
// broken path would: both the client and the server see a reset.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	links := p.snapshot()
	p.mu.Unlock()
	for _, l := range links {
		l.teardown(true)
	}
}

// CutAfter makes the next connection accepted on port reset after it has
// carried n bytes from the server to the client. Port 0 means the next
// data connection: any port but the control port Ports[0]. Cuts queue:
// two calls cut the next two connections.
func (p *Proxy) CutAfter(port int, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cuts[port] = append(p.cuts[port], max(n, 0))
}

// CutFirstAfter makes whichever data connection first carries n bytes
// from the server to the client reset, whenever it was accepted. Unlike
// CutAfter it cannot land on a data connection made ahead that then carries
// less (a listing) or nothing: the cut falls on a transfer.
func (p *Proxy) CutFirstAfter(n int64) {
	p.firstCut.Store(max(n, 1))
}

// claimFirstCut reports whether a data connection on port that has carried
// carried bytes takes the armed CutFirstAfter; it disarms it when it does.
func (p *Proxy) claimFirstCut(port int, carried int64) bool {
	n := p.firstCut.Load()
	return n > 0 && port != p.cfg.Ports[0] && carried >= n && p.firstCut.CompareAndSwap(n, 0)
}

// takeCut pops the budget for a new connection on port, or -1 for none;
// p.mu must be held.
func (p *Proxy) takeCut(port int) int64 {
	pop := func(key int) (int64, bool) {
		q := p.cuts[key]
		if len(q) == 0 {
			return 0, false
		}
		if len(q) == 1 {
			delete(p.cuts, key)
		} else {
			p.cuts[key] = q[1:]
		}
		return q[0], true
	}
	if n, ok := pop(port); ok {
		return n
	}
	if port != p.cfg.Ports[0] {
		if n, ok := pop(0); ok {
			return n
		}
	}
	return -1
}

// Stall stops every byte in every direction while on; connections stay
// open and what was held is delivered, intact, after Stall(false).
func (p *Proxy) Stall(on bool) {
	p.stall.set(on)
}

// Down makes the proxy reset new connections as soon as it accepts them,
// and resets the open ones, until Down(false): a server that went away.
func (p *Proxy) Down(on bool) {
	p.mu.Lock()
	p.down = on
	p.mu.Unlock()
	if on {
		p.CutAll()
	}
}

// SetDelay changes the one-way delay, also for bytes already on their way:
// each is delivered at its read time plus the delay in force.
func (p *Proxy) SetDelay(d time.Duration) {
	p.delay.set(d)
}
