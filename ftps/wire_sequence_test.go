package ftps

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mastfs/ftps/ftpsd"
)

// commandLog collects the commands an ftpsd server receives, in order
// (its CommandLog: one a line, PASS's argument hidden).
type commandLog struct {
	mu      sync.Mutex // guards pending
	pending string     // what was written since the last take
}

func (l *commandLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.pending += string(p)
	l.mu.Unlock()
	return len(p), nil
}

// take returns the complete lines written since the last call.
func (l *commandLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := strings.LastIndexByte(l.pending, '\n')
	if i < 0 {
		return nil
	}
	lines := strings.Split(l.pending[:i], "\n")
	l.pending = l.pending[i+1:]
	return lines
}

// wireServer is an in-process ftpsd serving root with explicit TLS, and
// the log of the commands it receives.
type wireServer struct {
	cfg  Config
	cmds *commandLog
}

func startWireServer(t *testing.T, root string, tune func(*ftpsd.Config)) *wireServer {
	t.Helper()
	cert, certPEM, err := ftpsd.SelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cmds := &commandLog{}
	scfg := ftpsd.Config{Root: root, Anonymous: true, CommandLog: cmds, Logger: slog.New(slog.DiscardHandler),
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}
	if tune != nil {
		tune(&scfg)
	}
	srv, err := ftpsd.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return &wireServer{cmds: cmds, cfg: Config{Host: "127.0.0.1", Port: addr.(*net.TCPAddr).Port,
		User: "anonymous", Password: "test@example.org", RootCAs: pool, Timeout: 20 * time.Second}}
}

// waitFor polls until the server has received the command last, and
// returns everything it logged since the last call.
func (w *wireServer) waitFor(t *testing.T, last string) []string {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		got = append(got, w.cmds.take()...)
		if len(got) > 0 && got[len(got)-1] == last {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("server never received %q; it received:\n%s", last, strings.Join(got, "\n"))
	return nil
}

// TestWireSequence pins what goes on the wire, command by command, for a
// login, a listing and a ranged read (wire.go says why each command
// beyond the library's is there). A change of jlaffaye/ftp's command
// order, or of ours, fails it: check the new order against wire.go before
// changing the expected lists.
func TestWireSequence(t *testing.T) {
	root := t.TempDir()
	data := []byte(strings.Repeat("0123456789", 100))
	if err := os.WriteFile(filepath.Join(root, "a.fits"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	w := startWireServer(t, root, nil)
	cfg := w.cfg
	cfg.MaxConns = 1 // one control connection: one sequence
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()

	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	check := func(step string, want []string) {
		t.Helper()
		got := w.waitFor(t, want[len(want)-1])
		if !slices.Equal(got, want) {
			t.Errorf("%s: the server received\n  %s\nwant\n  %s", step,
				strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}
	check("login", []string{
		"AUTH TLS", // ours, before the library reads the greeting
		"USER anonymous", "PASS <hidden>", "FEAT", "TYPE I", "OPTS UTF8 ON", "PBSZ 0", "PROT P",
		"EPSV", // ours: the next transfer's data connection, made ahead
	})

	entries, err := c.List(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name != "a.fits" {
		t.Fatalf("listing: %v", entries)
	}
	// The library's own EPSV is answered from the kept reply.
	check("listing", []string{"MLSD /", "EPSV"})

	rc, err := c.ReadAt(ctx, "/a.fits", 990)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(data[990:]) {
		t.Fatalf("ranged read: %q", got)
	}
	// REST and RETR go in one write, with no EPSV before them.
	check("ranged read", []string{"REST 990", "RETR /a.fits", "EPSV"})

	c.Close()
	check("close", []string{"QUIT"})
	if st := c.Stats(); st.Dials != 1 || st.ReadyUsed != 2 {
		t.Errorf("dials %d, transfers on connections made ahead %d; want 1 and 2", st.Dials, st.ReadyUsed)
	}
}
