package ftpstest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"mastfs/ftps/ftpsd"
)

// Hostile is an ftpsd server over a scripted backend, for what a real
// server would never send: names no local file system can hold, listing
// lines of any shape and number, files that change while they are read.
// It serves whatever listing bodies and file contents the test sets, byte
// for byte, to anonymous logins, and needs no root and no server binary.
type Hostile struct {
	Host    string // 127.0.0.1
	Port    int
	CAFile  string // PEM of the certificate, for --ca-file
	RootCAs *x509.CertPool

	srv      *ftpsd.Server
	script   *script
	commands LogBuffer
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
	h := &Hostile{Host: Host, RootCAs: c.pool, script: &script{
		lists: map[string]func(io.Writer) error{"/": func(io.Writer) error { return nil }},
		files: map[string][]byte{},
	}}
	h.srv, err = ftpsd.New(ftpsd.Config{
		Backend:     h.script,
		TLS:         &tls.Config{Certificates: []tls.Certificate{pair}},
		Anonymous:   true,
		MaxConns:    1000,
		DataTimeout: 10 * time.Second,
		ListOnly:    !o.MLSD,
		CommandLog:  &h.commands,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("hostile server: %v", err)
	}
	addr, err := h.srv.Listen(net.JoinHostPort(Host, "0"))
	if err != nil {
		t.Fatalf("hostile server: %v", err)
	}
	t.Cleanup(h.Stop)
	h.Port = addr.(*net.TCPAddr).Port
	if h.CAFile, _, err = c.write(t.TempDir()); err != nil {
		t.Fatalf("hostile server: %v", err)
	}
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
	h.script.mu.Lock()
	defer h.script.mu.Unlock()
	h.script.lists[path.Clean("/"+dir)] = write
}

// SetFile sets the content RETR serves for p. A transfer in progress
// follows the change: it sends the new bytes from where it is, and ends
// where the new content ends.
func (h *Hostile) SetFile(p string, data []byte) {
	h.script.mu.Lock()
	defer h.script.mu.Unlock()
	h.script.files[path.Clean("/"+p)] = data
}

// Commands returns every command received so far, PASS arguments hidden.
func (h *Hostile) Commands() []string {
	return strings.Split(strings.TrimSuffix(h.commands.String(), "\n"), "\n")
}

// Stop closes the listener and every connection and waits for them.
func (h *Hostile) Stop() { _ = h.srv.Close() }

// script is the backend: listings and contents as the test set them.
type script struct {
	mu    sync.Mutex                       // guards lists and files
	lists map[string]func(io.Writer) error // directory -> what writes its listing
	files map[string][]byte
}

var _ ftpsd.Backend = (*script)(nil)

func (s *script) listing(dir string) func(io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lists[dir]
}

func (s *script) file(p string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.files[p]
	return b, ok
}

// Stat knows a directory by its listing and a file by its content.
func (s *script) Stat(p string) (fs.FileInfo, error) {
	if s.listing(p) != nil {
		return info{name: path.Base(p), mode: fs.ModeDir | 0o755}, nil
	}
	if b, ok := s.file(p); ok {
		return info{name: path.Base(p), mode: 0o644, size: int64(len(b))}, nil
	}
	return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
}

// List sends the scripted body whatever the verb; MLST is not offered.
func (s *script) List(p, verb string) (ftpsd.Listing, error) {
	if verb == "MLST" {
		return nil, fmt.Errorf("MLST: %w", errors.ErrUnsupported)
	}
	write := s.listing(p)
	if write == nil {
		return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	return write, nil
}

// Open reads the content afresh for every piece, so a file changed
// meanwhile is sent as it now is.
func (s *script) Open(p string, off int64) (io.ReadCloser, error) {
	if _, ok := s.file(p); !ok {
		return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	return &liveReader{s: s, p: p, off: off}, nil
}

// liveReader reads a scripted file in pieces of at most 32 KiB.
type liveReader struct {
	s   *script
	p   string
	off int64
}

func (r *liveReader) Read(b []byte) (int, error) {
	data, _ := r.s.file(r.p)
	if r.off >= int64(len(data)) {
		return 0, io.EOF
	}
	n := copy(b[:min(len(b), 32<<10)], data[r.off:])
	r.off += int64(n)
	return n, nil
}

func (r *liveReader) Close() error { return nil }

// info is the fs.FileInfo of a scripted entry.
type info struct {
	name string
	mode fs.FileMode
	size int64
}

func (i info) Name() string       { return i.name }
func (i info) Size() int64        { return i.size }
func (i info) Mode() fs.FileMode  { return i.mode }
func (i info) ModTime() time.Time { return time.Time{} }
func (i info) IsDir() bool        { return i.mode.IsDir() }
func (i info) Sys() any           { return nil }
