// Package demo serves a generated MAST-like stage from inside mastfs, for
// "mastfs demo": a stage written to disk, a self-signed certificate and an
// FTPS server on 127.0.0.1, and the guide printed once it is mounted.
package demo

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"mastfs/ftps/ftpsd"
	"mastfs/ftps/stagegen"
)

// RemoteDir is the stage directory the demo mounts, as MAST's staging
// e-mail would name it.
const RemoteDir = "/" + stagegen.AnonDir

// Server is the demo's FTPS server and what a mount needs to reach it.
type Server struct {
	Host   string
	Port   int
	CAFile string // the server's certificate, to trust

	work string
	srv  *ftpsd.Server
}

// Start writes a stage (with a large file of about large bytes), a
// certificate and its PEM into work, and serves the stage over explicit
// TLS on a free port of 127.0.0.1.
func Start(work string, large int64, log *slog.Logger) (*Server, error) {
	stage, err := stagegen.WriteStage(filepath.Join(work, "stage"),
		stagegen.StageOptions{LargeSize: max(large, 2*stagegen.BlockSize), ManyFiles: 200})
	if err != nil {
		return nil, err
	}
	cert, certPEM, err := ftpsd.SelfSigned([]string{"127.0.0.1", "localhost"}, 30*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	caFile := filepath.Join(work, "ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o644); err != nil {
		return nil, err
	}
	srv, err := ftpsd.New(ftpsd.Config{Root: stage.Root, Anonymous: true, Logger: log,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	if err != nil {
		return nil, err
	}
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, err
	}
	return &Server{Host: "127.0.0.1", Port: addr.(*net.TCPAddr).Port, CAFile: caFile, work: work, srv: srv}, nil
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Guide is what the demo prints once mounted at mp, the mount point as the
// user gave it; self is how this program was run.
func (s *Server) Guide(mp, self string) string {
	work, port, caFile := s.work, s.Port, s.CAFile
	if !strings.Contains(self, "/") {
		self = "mastfs"
	}
	q := shellQuote
	jwst := path.Join(mp, path.Base(stagegen.JWSTFile))
	return fmt.Sprintf(`
mastfs demo: a MAST-like stage is mounted at %[1]s
  served from %[2]s/stage by an FTPS server inside this process
  (127.0.0.1:%[3]d, explicit TLS, certificate %[4]s), mounted as %[5]s

Try, in another terminal:
  ls -l %[1]s
  cp %[6]s /tmp/
  python3 -c 'from astropy.io import fits; print(fits.getheader("%[7]s")["TELESCOP"])'
  %[8]s prefetch %[9]s           # warm the cache, with a progress bar
  %[8]s status %[1]s
  %[8]s cache du --cache-dir %[10]s

Walk every step of talking to the server, as you would with MAST's:
  %[8]s check --host 127.0.0.1 --port %[3]d --ca-file %[4]s --remote-dir %[5]s

Ctrl-C unmounts and stops.
`, q(mp), work, port, q(caFile), RemoteDir, q(path.Join(mp, path.Base(stagegen.HSTFile))), jwst,
		self, q(path.Join(mp, "large")), q(filepath.Join(work, "cache")))
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./@:+=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
