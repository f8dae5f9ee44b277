package ftpstest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Hostile is a scripted FTPS server (explicit TLS, AUTH TLS) for what a
// real server would never send: names no local file system can hold,
// listing lines of any shape and number, files that change while they are
// read. It serves whatever listing bodies and file contents the test sets,
// byte for byte, and needs no root and no server binary.
//
// It speaks USER, PASS, AUTH TLS, PBSZ, PROT, FEAT, SYST, TYPE, OPTS, PWD,
// CWD, EPSV, PASV, LIST, MLSD, NLST, REST, RETR, NOOP and QUIT. Data
// connections are TLS when PROT P is in force; TLS session reuse is
// accepted but not required.
type Hostile struct {
	Host    string // 127.0.0.1
	Port    int
	CAFile  string // PEM of the certificate, for --ca-file
	RootCAs *x509.CertPool

	ln   net.Listener
	tls  *tls.Config
	mlsd bool
	wg   sync.WaitGroup

	mu       sync.Mutex                       // guards lists, files, conns, commands, closed
	lists    map[string]func(io.Writer) error // directory -> what writes its listing
	files    map[string][]byte
	conns    map[net.Conn]struct{}
	commands []string
	closed   bool
}

// HostileOptions shapes a Hostile server.
type HostileOptions struct {
	MLSD bool // offer MLST in FEAT, so clients list with MLSD; else LIST
}

// StartHostile starts a Hostile server on 127.0.0.1, stopped when the test
// ends.
func StartHostile(t testing.TB, o HostileOptions) *Hostile {
	t.Helper()
	c, err := testCertificate()
	if err != nil {
		t.Fatalf("hostile server: certificate: %v", err)
	}
	pair, err := tls.X509KeyPair(c.certPEM, c.keyPEM)
	if err != nil {
		t.Fatalf("hostile server: key pair: %v", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
	if err != nil {
		t.Fatalf("hostile server: %v", err)
	}
	h := &Hostile{
		Host:    Host,
		Port:    ln.Addr().(*net.TCPAddr).Port,
		RootCAs: c.pool,
		ln:      ln,
		tls:     &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		mlsd:    o.MLSD,
		lists:   map[string]func(io.Writer) error{"/": func(io.Writer) error { return nil }},
		files:   map[string][]byte{},
		conns:   map[net.Conn]struct{}{},
	}
	if h.CAFile, _, err = c.write(t.TempDir()); err != nil {
		t.Fatalf("hostile server: %v", err)
	}
	h.wg.Add(1)
	go h.accept()
	t.Cleanup(h.Stop)
	return h
}

// SetList makes body the answer to a listing of dir (LIST or MLSD, as the
// server offers), sent as is. A directory is known once it has a listing.
func (h *Hostile) SetList(dir string, body []byte) {
	h.SetListStream(dir, func(w io.Writer) error {
		_, err := w.Write(body)
		return err
	})
}

// SetListStream makes each listing of dir whatever write sends on the
// data connection, for listings too large to hold or without end: write
// returns when done, or with the error that stopped it (the client hung up).
func (h *Hostile) SetListStream(dir string, write func(w io.Writer) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lists[path.Clean("/"+dir)] = write
}

// SetFile sets the content RETR serves for p. A transfer in progress
// follows the change: it sends the new bytes from where it is, and ends
// where the new content ends.
func (h *Hostile) SetFile(p string, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.files[path.Clean("/"+p)] = data
}

// Commands returns every command received so far, PASS arguments hidden.
func (h *Hostile) Commands() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.commands...)
}

// Stop closes the listener and every connection and waits for them.
func (h *Hostile) Stop() {
	h.mu.Lock()
	h.closed = true
	for c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
	h.ln.Close()
	h.wg.Wait()
}

func (h *Hostile) track(c net.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		c.Close()
		return false
	}
	h.conns[c] = struct{}{}
	return true
}

func (h *Hostile) untrack(c net.Conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	c.Close()
}

func (h *Hostile) accept() {
	defer h.wg.Done()
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		if !h.track(c) {
			continue
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer h.untrack(c)
			s := &hostileSession{h: h, ctl: c}
			s.serve()
		}()
	}
}

// hostileSession is one control connection.
type hostileSession struct {
	h      *Hostile
	ctl    net.Conn // plain, then TLS after AUTH TLS
	r      *bufio.Reader
	prot   bool         // PROT P: data connections are TLS
	pasv   net.Listener // the passive listener for the next transfer
	offset int64        // REST
}

func (s *hostileSession) reply(format string, args ...any) error {
	_ = s.ctl.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := fmt.Fprintf(s.ctl, format+"\r\n", args...)
	return err
}

func (s *hostileSession) serve() {
	defer func() {
		if s.pasv != nil {
			s.pasv.Close()
		}
	}()
	s.r = bufio.NewReader(s.ctl)
	if s.reply("220 hostile test server") != nil {
		return
	}
	for {
		_ = s.ctl.SetReadDeadline(time.Now().Add(5 * time.Minute))
		line, err := s.r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		logged := line
		if verb == "PASS" {
			logged = "PASS ****"
		}
		s.h.mu.Lock()
		s.h.commands = append(s.h.commands, logged)
		s.h.mu.Unlock()
		if !s.do(verb, arg) {
			return
		}
	}
}

// do answers one command; false ends the session.
func (s *hostileSession) do(verb, arg string) bool {
	var err error
	switch verb {
	case "AUTH":
		if err = s.reply("234 AUTH TLS ok"); err != nil {
			return false
		}
		tc := tls.Server(s.ctl, s.h.tls)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if tc.Handshake() != nil {
			return false
		}
		_ = tc.SetDeadline(time.Time{})
		s.ctl, s.r = tc, bufio.NewReader(tc) // Stop closes the socket under it
	case "USER":
		err = s.reply("331 any password will do")
	case "PASS":
		err = s.reply("230 logged in")
	case "FEAT":
		feats := " EPSV\r\n PASV\r\n REST STREAM\r\n UTF8\r\n PBSZ\r\n PROT\r\n"
		if s.h.mlsd {
			feats += " MLST type*;size*;modify*;\r\n"
		}
		err = s.reply("211-Features:\r\n%s211 End", feats)
	case "SYST":
		err = s.reply("215 UNIX Type: L8")
	case "TYPE", "OPTS", "PBSZ", "NOOP":
		err = s.reply("200 ok")
	case "PROT":
		s.prot = strings.EqualFold(arg, "P")
		err = s.reply("200 protection level set")
	case "PWD":
		err = s.reply(`257 "/"`)
	case "CWD":
		if s.h.listing(arg) != nil {
			err = s.reply("250 ok")
		} else {
			err = s.reply("550 no such directory")
		}
	case "EPSV", "PASV":
		err = s.passive(verb == "EPSV")
	case "REST":
		n, perr := strconv.ParseInt(arg, 10, 64)
		if perr != nil || n < 0 {
			err = s.reply("501 bad offset")
			break
		}
		s.offset = n
		err = s.reply("350 restarting at %d", n)
	case "LIST", "MLSD", "NLST":
		err = s.list(arg)
	case "RETR":
		err = s.retr(arg)
	case "QUIT":
		_ = s.reply("221 bye")
		return false
	default:
		err = s.reply("502 %s not implemented", verb)
	}
	return err == nil
}

// listing returns what writes a directory's listing, or nil.
func (h *Hostile) listing(dir string) func(io.Writer) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lists[path.Clean("/"+dir)]
}

func (h *Hostile) file(p string) ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, ok := h.files[path.Clean("/"+p)]
	return b, ok
}

func (s *hostileSession) passive(extended bool) error {
	if s.pasv != nil {
		s.pasv.Close()
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
	if err != nil {
		s.pasv = nil
		return s.reply("425 cannot open a passive port")
	}
	s.pasv = ln
	port := ln.Addr().(*net.TCPAddr).Port
	if extended {
		return s.reply("229 Entering Extended Passive Mode (|||%d|)", port)
	}
	return s.reply("227 Entering Passive Mode (127,0,0,1,%d,%d)", port>>8, port&0xff)
}

// data accepts the transfer's data connection, TLS when PROT P is on.
func (s *hostileSession) data() (net.Conn, error) {
	ln := s.pasv
	s.pasv = nil
	if ln == nil {
		return nil, errors.New("no passive port")
	}
	defer ln.Close()
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		return nil, err
	}
	if !s.h.track(c) {
		return nil, net.ErrClosed
	}
	if !s.prot {
		return c, nil
	}
	tc := tls.Server(c, s.h.tls)
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		s.h.untrack(c)
		return nil, err
	}
	_ = tc.SetDeadline(time.Time{})
	return tc, nil
}

func (s *hostileSession) list(arg string) error {
	dir := arg
	if strings.HasPrefix(dir, "-") { // LIST -a and the like
		_, dir, _ = strings.Cut(dir, " ")
	}
	if dir == "" {
		dir = "/"
	}
	f := s.h.listing(dir)
	if f == nil {
		return s.reply("550 no such directory")
	}
	if err := s.reply("150 here comes the listing"); err != nil {
		return err
	}
	c, err := s.data()
	if err != nil {
		return s.reply("425 no data connection: %v", err)
	}
	_ = c.SetWriteDeadline(time.Now().Add(time.Minute))
	err = f(c)
	s.closeData(c)
	if err != nil {
		return s.reply("426 failure writing the listing")
	}
	return s.reply("226 listing sent")
}

// retr streams a file from the REST offset. It looks the content up again
// for every piece, so a file changed meanwhile is sent as it now is.
func (s *hostileSession) retr(p string) error {
	off := s.offset
	s.offset = 0
	if _, ok := s.h.file(p); !ok {
		return s.reply("550 no such file")
	}
	if err := s.reply("150 opening data connection"); err != nil {
		return err
	}
	c, err := s.data()
	if err != nil {
		return s.reply("425 no data connection: %v", err)
	}
	const piece = 32 << 10
	for {
		b, _ := s.h.file(p)
		if off >= int64(len(b)) {
			break
		}
		end := min(off+piece, int64(len(b)))
		_ = c.SetWriteDeadline(time.Now().Add(time.Minute))
		if _, err = c.Write(b[off:end]); err != nil {
			break
		}
		off = end
	}
	s.closeData(c)
	if err != nil {
		return s.reply("426 failure writing network stream")
	}
	return s.reply("226 transfer complete")
}

func (s *hostileSession) closeData(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		_ = tc.Close() // sends close_notify, then closes the socket
		c = tc.NetConn()
	}
	s.h.untrack(c)
}
