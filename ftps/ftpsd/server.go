// Package ftpsd is a small read-only FTPS server: it serves one local
// directory, or whatever a Backend provides, with explicit TLS (AUTH TLS, then PBSZ 0 and PROT P so that
// every data connection is TLS too), passive data connections (EPSV and
// PASV), LIST and MLSD listings and REST for ranged downloads. It carries
// "mastfs demo", which mounts a generated stage with no account and no
// network, and tests that need a server without root; with a scripted
// Backend it sends listings and contents no real server would.
//
// It is not a general FTP server: nothing can be uploaded, changed or
// deleted, there is no active mode (PORT), and it is meant for loopback.
package ftpsd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Config sets up a Server. Zero fields take their defaults.
type Config struct {
	Root        string            // local directory served as "/", read-only; ignored when Backend is set
	Backend     Backend           // what is served, instead of Root
	TLS         *tls.Config       // certificate for AUTH TLS and data connections; nil serves plain FTP
	Anonymous   bool              // accept "anonymous" (and "ftp") with any password
	Users       map[string]string // other accounts: name to password
	MaxConns    int               // control connections at once; default 32
	IdleTimeout time.Duration     // a control connection silent this long is closed; default 5 minutes
	DataTimeout time.Duration     // wait for a data connection, or for it to take bytes; default 30 s
	Logger      *slog.Logger      // default slog.Default()
	// RefuseTLS13Data answers a data connection that negotiated TLS 1.3
	// with 522, as servers do whose TLS 1.3 session resumption fails, so
	// clients' fallback to TLS 1.2 can be tested.
	RefuseTLS13Data bool
	// ListOnly leaves MLST out of FEAT, so that clients list with LIST.
	ListOnly bool
	// CommandLog gets each command received, one a line, with the
	// argument of PASS written "<hidden>". Writes come from the sessions'
	// goroutines at once: it must be safe for that.
	CommandLog io.Writer
}

// Server serves one directory over FTPS. It is safe for concurrent use.
type Server struct {
	cfg     Config
	backend Backend
	closer  io.Closer // the Backend New opened on Root, or nil
	log     *slog.Logger

	mu       sync.Mutex // guards ln, sessions, closed
	ln       net.Listener
	sessions map[*session]struct{}
	closed   bool
	wg       sync.WaitGroup // one per session
}

// ErrClosed is returned by Serve once Close was called.
var ErrClosed = errors.New("ftpsd: server closed")

// New checks cfg and opens its root directory, unless it has a Backend.
func New(cfg Config) (*Server, error) {
	if cfg.Root == "" && cfg.Backend == nil {
		return nil, errors.New("ftpsd: no root directory and no backend")
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 32
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.DataTimeout <= 0 {
		cfg.DataTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TLS != nil {
		t := cfg.TLS.Clone()
		t.MinVersion = max(t.MinVersion, tls.VersionTLS12)
		cfg.TLS = t
	}
	s := &Server{cfg: cfg, backend: cfg.Backend, log: cfg.Logger, sessions: map[*session]struct{}{}}
	if s.backend == nil {
		d, err := openDir(cfg.Root)
		if err != nil {
			return nil, fmt.Errorf("ftpsd: open root: %w", err)
		}
		s.backend, s.closer = d, d
	}
	return s, nil
}

// Listen listens on addr, such as "127.0.0.1:0", and serves in the
// background until Close. It returns the address it listens on.
func (s *Server) Listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ftpsd: listen %s: %w", addr, err)
	}
	go func() { _ = s.Serve(ln) }()
	return ln.Addr(), nil
}

// Serve accepts control connections on ln until Close, and returns
// ErrClosed then.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	s.ln = ln
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("ftpsd: accept: %w", err)
		}
		s.start(c)
	}
}

// start runs a session for c, or refuses c when the server is full.
func (s *Server) start(c net.Conn) {
	s.mu.Lock()
	if s.closed || len(s.sessions) >= s.cfg.MaxConns {
		s.mu.Unlock()
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte("421 Too many connections, try again later\r\n"))
		c.Close()
		return
	}
	ss := newSession(s, c)
	s.sessions[ss] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		ss.run()
		s.mu.Lock()
		delete(s.sessions, ss)
		s.mu.Unlock()
	}()
}

// Close stops listening, ends every session and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ln := s.ln
	open := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		open = append(open, ss)
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, ss := range open {
		ss.abort()
	}
	s.wg.Wait()
	if s.closer != nil {
		return s.closer.Close()
	}
	return nil
}
