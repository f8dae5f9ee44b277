package ftpsd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// passive is the listener of one EPSV or PASV reply. It accepts exactly one
// data connection, from the control connection's own peer.
type passive struct {
	ln     *net.TCPListener
	result chan accepted // gets exactly one value
}

type accepted struct {
	conn net.Conn
	err  error
}

func listenPassive(local, peer net.IP, timeout time.Duration) (*passive, error) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: local})
	if err != nil {
		return nil, err
	}
	p := &passive{ln: ln, result: make(chan accepted, 1)}
	_ = ln.SetDeadline(time.Now().Add(timeout))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				p.result <- accepted{err: err}
				return
			}
			// A data connection from anyone but the client would let a third
			// party take the transfer.
			if a, ok := c.RemoteAddr().(*net.TCPAddr); !ok || !a.IP.Equal(peer) {
				c.Close()
				continue
			}
			ln.Close()
			p.result <- accepted{conn: c}
			return
		}
	}()
	return p, nil
}

func (p *passive) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// wait returns the accepted data connection. Call it at most once, and
// never after close.
func (p *passive) wait() (net.Conn, error) {
	r := <-p.result
	return r.conn, r.err
}

// close stops listening and drops a connection nobody will wait for.
func (p *passive) close() {
	p.ln.Close()
	go func() {
		if r := <-p.result; r.conn != nil {
			r.conn.Close()
		}
	}()
}

// openPassive replaces the session's passive listener with a new one on
// the control connection's local address.
func (s *session) openPassive() (*passive, error) {
	ctl := s.control()
	local, _ := ctl.LocalAddr().(*net.TCPAddr)
	peer, _ := ctl.RemoteAddr().(*net.TCPAddr)
	if local == nil || peer == nil {
		return nil, errors.New("control connection is not TCP")
	}
	p, err := listenPassive(local.IP, peer.IP, s.srv.cfg.DataTimeout)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	old := s.pasv
	s.pasv = p
	if s.done {
		p.close()
	}
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
	return p, nil
}

func (s *session) epsv(arg string) {
	a := strings.ToUpper(strings.TrimSpace(arg))
	if a == "ALL" {
		s.reply(200, "EPSV ALL ok")
		return
	}
	p, err := s.openPassive()
	if err != nil {
		s.reply(425, "Can't open passive connection: "+err.Error())
		return
	}
	s.reply(229, fmt.Sprintf("Entering Extended Passive Mode (|||%d|)", p.port()))
}

func (s *session) pasvCmd() {
	local, _ := s.control().LocalAddr().(*net.TCPAddr)
	if local == nil || local.IP.To4() == nil {
		s.reply(425, "PASV needs IPv4: use EPSV")
		return
	}
	p, err := s.openPassive()
	if err != nil {
		s.reply(425, "Can't open passive connection: "+err.Error())
		return
	}
	ip := local.IP.To4()
	port := p.port()
	s.reply(227, fmt.Sprintf("Entering Passive Mode (%d,%d,%d,%d,%d,%d)", ip[0], ip[1], ip[2], ip[3], port>>8, port&0xff))
}

// transfer sends what send writes over the data connection of the latest
// EPSV or PASV, with TLS after PROT P, and answers 226 or 426.
func (s *session) transfer(what string, send func(io.Writer) error) {
	defer func() { s.rest = 0 }()
	if s.srv.cfg.TLS != nil && !s.protect {
		s.reply(521, "Data connections must be protected: send PBSZ 0 and PROT P")
		return
	}
	s.mu.Lock()
	p := s.pasv
	s.pasv, s.waiting = nil, p
	s.mu.Unlock()
	if p == nil {
		s.reply(425, "Use EPSV or PASV first")
		return
	}
	s.reply(150, "Opening BINARY mode data connection for "+what)
	conn, err := p.wait()
	s.mu.Lock()
	s.waiting = nil
	if err == nil && s.done {
		err = net.ErrClosed
		conn.Close()
	}
	s.active = conn
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.active = nil
		s.mu.Unlock()
	}()
	if err != nil {
		s.reply(425, "No data connection: "+err.Error())
		return
	}
	timeout := s.srv.cfg.DataTimeout
	if s.protect {
		tc := tls.Server(conn, s.srv.cfg.TLS)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			conn.Close()
			s.reply(425, "TLS handshake on the data connection failed")
			return
		}
		if s.srv.cfg.RefuseTLS13Data && tc.ConnectionState().Version == tls.VersionTLS13 {
			tc.Close()
			s.reply(522, "SSL connection failed: session reuse required")
			return
		}
		conn = tc
	}
	err = send(&deadlineWriter{conn: conn, timeout: timeout})
	if cerr := conn.Close(); err == nil {
		err = cerr // for TLS, the close_notify the client waits for
	}
	if err != nil {
		s.log.Debug("ftpsd: transfer cut short", "what", what, "err", err)
		s.reply(426, "Connection closed; transfer aborted")
		return
	}
	s.reply(226, "Transfer complete")
}

// deadlineWriter gives every write its own deadline, so a client that stops
// reading cannot hold the session forever.
type deadlineWriter struct {
	conn    net.Conn
	timeout time.Duration
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	_ = d.conn.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.conn.Write(p)
}

func (s *session) retr(arg string) {
	p := s.resolve(arg)
	st, err := s.srv.backend.Stat(p)
	if err == nil && !st.Mode().IsRegular() {
		s.rest = 0
		s.reply(550, "Not a plain file: "+p)
		return
	}
	var r io.ReadCloser
	if err == nil {
		r, err = s.srv.backend.Open(p, min(s.rest, st.Size()))
	}
	if err != nil {
		s.rest = 0
		s.fsError(p, err)
		return
	}
	defer r.Close()
	s.transfer(fmt.Sprintf("%s (%d bytes)", p, st.Size()-min(s.rest, st.Size())), func(w io.Writer) error {
		buf := make([]byte, 256<<10)
		_, err := io.CopyBuffer(w, r, buf)
		return err
	})
}
