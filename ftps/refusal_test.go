package ftps

import (
	"crypto/tls"
	"errors"
	"net"
	"net/textproto"
	"testing"
	"time"
)

// testClient is a client that never dials: for tests of its decisions.
func testClient(t *testing.T) *Client {
	t.Helper()
	c, err := New(Config{Host: "127.0.0.1", Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A refused data connection is read against what the control connection
// negotiated and did, never against the configured maximum.
func TestRefusedDataConnection(t *testing.T) {
	for _, tc := range []struct {
		name      string
		version   uint16 // negotiated on the control connection
		tickets   bool   // the server handed out a session to resume
		tookReady bool   // the transfer used a data connection made ahead
		code      int
		want      error // errors.Is the result
		noReady   bool  // data connections made ahead are turned off
		fallback  bool  // TLS 1.3 is turned off
	}{
		{name: "made ahead", version: tls.VersionTLS13, tookReady: true, code: 425, want: errStaleConn, noReady: true},
		{name: "TLS 1.3", version: tls.VersionTLS13, code: 425, want: errStaleConn, fallback: true},
		{name: "TLS 1.3 522", version: tls.VersionTLS13, tickets: true, code: 522, want: errStaleConn, fallback: true},
		{name: "TLS 1.2 no tickets", version: tls.VersionTLS12, code: 425, want: ErrNoSessionReuse},
		{name: "TLS 1.2 no tickets, made ahead first", version: tls.VersionTLS12, tookReady: true, code: 425,
			want: errStaleConn, noReady: true},
		{name: "TLS 1.2 tickets", version: tls.VersionTLS12, tickets: true, code: 425},
		{name: "not a data refusal", version: tls.VersionTLS12, code: 550, want: ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testClient(t)
			c.cfg.MaxTLSVersion = tls.VersionTLS13 // the configured maximum must not matter
			cn := &conn{client: c, tls: &tls.Config{MaxVersion: tls.VersionTLS13},
				tickets: &sessionCache{}, data: &dataConn{}, tookReady: tc.tookReady}
			cn.state.Version = tc.version
			cn.tickets.issued.Store(tc.tickets)
			err := c.opError(cn, "list", "/d", &textproto.Error{Code: tc.code, Msg: "refused"})
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v; want %v", err, tc.want)
			}
			if tc.want == nil && (errors.Is(err, errStaleConn) || errors.Is(err, ErrNoSessionReuse)) {
				t.Errorf("error %v; want the reply alone", err)
			}
			if errors.Is(err, ErrNoSessionReuse) && IsTransient(err) {
				t.Errorf("ErrNoSessionReuse is retried: %v", err)
			}
			if c.noReady.Load() != tc.noReady {
				t.Errorf("made ahead turned off: %v; want %v", c.noReady.Load(), tc.noReady)
			}
			if fell := c.tlsMax.Load() == tls.VersionTLS12; fell != tc.fallback {
				t.Errorf("TLS 1.3 turned off: %v; want %v", fell, tc.fallback)
			}
		})
	}
}

// A server that drops a data connection whose TLS handshake began before
// the transfer command turns early handshakes off at once: the operation
// is asked to be tried again, and later data connections stay silent
// until they are read.
func TestDroppedEarlyHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan *net.TCPConn, 2)
	go func() {
		for {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- s.(*net.TCPConn)
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	c := testClient(t)
	cn := &conn{client: c, peer: "127.0.0.1", tls: &tls.Config{ServerName: "127.0.0.1"}}
	dc, err := cn.dialData(port, false)
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	// It spoke first: the server reads its ClientHello and drops it.
	buf := make([]byte, 1)
	_ = s.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := s.Read(buf); err != nil {
		t.Fatalf("no ClientHello came: %v", err)
	}
	_ = s.SetLinger(0)
	s.Close()
	dc.start(time.Minute)
	if _, err := dc.Read(buf); !errors.Is(err, errStaleConn) {
		t.Fatalf("read on a dropped connection: %v; want a request to try again", err)
	}
	if !c.lateTLS.Load() {
		t.Fatal("early handshakes still on")
	}

	// The next one stays silent until it is read.
	dc2, err := cn.dialData(port, false)
	if err != nil {
		t.Fatal(err)
	}
	defer dc2.Close()
	s2 := <-accepted
	defer s2.Close()
	if dc2.hs != nil {
		t.Fatal("a handshake began ahead after early handshakes were turned off")
	}
	read := make(chan error, 1)
	go func() { _, err := dc2.Read(buf); read <- err }()
	_ = s2.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := s2.Read(buf); err != nil || buf[0] != 0x16 { // a TLS handshake record
		t.Fatalf("after the first read the server got %x, %v; want a ClientHello", buf, err)
	}
	s2.Close()
	if err := <-read; err == nil || errors.Is(err, errStaleConn) {
		t.Fatalf("read on a connection closed after the command: %v; want a plain error", err)
	}
}
