package netproxy

// CutPort resets the connections open on one port and leaves the others:
// the control connection of an FTP session can be broken while its data
// connection carries on, as when a middlebox drops an idle-looking
// control channel during a long transfer.
func (p *Proxy) CutPort(port int) {
	p.mu.Lock()
	var cut []*link
	for l := range p.links {
		if l.port == port {
			cut = append(cut, l)
		}
	}
	p.mu.Unlock()
	for _, l := range cut {
		l.teardown(true)
	}
}

// OpenOn returns how many connections are open on port now.
func (p *Proxy) OpenOn(port int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for l := range p.links {
		if l.port == port {
			n++
		}
	}
	return n
}

// OpenData returns how many connections are open on ports other than the
// control port Ports[0]: the FTP data connections in flight.
func (p *Proxy) OpenData() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for l := range p.links {
		if l.port != p.cfg.Ports[0] {
			n++
		}
	}
	return n
}
