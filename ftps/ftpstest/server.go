// Package ftpstest starts real FTPS servers on loopback for integration
// tests, the way net/http/httptest serves net/http: vsftpd (explicit and
// implicit TLS), pure-ftpd, ProFTPD and pyftpdlib (explicit TLS), each with
// a certificate made at test time and serving a generated MAST-like stage.
// Kinds lists them in the configurations a client must meet, each with its
// Quirks. Every server it starts is stopped by t.Cleanup, even when the
// test fails.
//
// The servers need root (chroot, setuid, a mount namespace, a local
// account) and the binaries that "make deps" installs. When either is
// missing, tests are skipped with the reason, or fail under CI=true.
package ftpstest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mastfs/ftps/stagegen"
)

// Host is where every server listens.
const Host = "127.0.0.1"

// AnonPassword is the e-mail address anonymous logins give.
const AnonPassword = "mastfs-test@example.org"

// Options shapes a server. The zero value is an explicit-TLS server on a
// free port with a fresh default stage.
type Options struct {
	Implicit    bool            // implicit TLS (TLS from the first byte) instead of AUTH TLS
	PasvAddress string          // address announced in 227 replies, e.g. "127.0.0.2"; the server still listens on 127.0.0.1 only
	MaxClients  int             // connection cap for the whole server, to provoke 421; 0 means none (pure-ftpd: 100)
	MaxPerIP    int             // connection cap per client address; 0 means none (pure-ftpd: MaxClients)
	Stage       *stagegen.Stage // serve this stage; nil writes a default one into t.TempDir()
	MaxTLS      uint16          // tls.VersionTLS12 keeps the server from TLS 1.3; 0 leaves OpenSSL's default (1.3)
	Port        int             // control port; 0 picks a free one
	PasvPorts   int             // size of the passive port range; 0 means 40
	Name        string          // overrides the generated name, e.g. "vsftpd-tls12"

	// TraverseOnly makes the stage root and the folders that hold stages
	// (anonymous/, each user's folder) mode 711: a session may change
	// into a stage it knows the path of, but not list its parents. It
	// changes the stage on disk, so every server sharing it sees it.
	TraverseOnly bool

	// ProFTPD only.
	SessionTickets bool // TLSSessionTickets on; off by default, as in ProFTPD
	RefuseMLSD     bool // <Limit MLSD> DenyAll: MLSD stays in FEAT but answers 550
}

// Server is one running FTPS server.
type Server struct {
	Impl     string // "vsftpd", "pure-ftpd", "proftpd" or "pyftpdlib"
	Name     string // e.g. "vsftpd-explicit"; fit for t.Run
	Quirks   Quirks // what this server does that a client must live with
	Host     string // always 127.0.0.1
	Port     int
	Implicit bool
	CAFile   string // PEM of the self-signed certificate, for --cacert / --ca-file
	RootCAs  *x509.CertPool
	Stage    *stagegen.Stage

	AnonUser, AnonPassword string // "anonymous" and an e-mail address
	User, Password         string // the account that also reads Stage.UserDir

	PasvAddress      string // announced passive address; "" means Host
	PasvMin, PasvMax int    // passive port range
	MaxTLS           uint16 // as in Options
	Dir              string // configuration, certificate and logs
	XferLog          string // wu-ftpd style transfer log
	ProtocolLog      string // every command received; "" when the server keeps none
	Output           string // the server's own stdout and stderr

	newCmd       func() *exec.Cmd                             // a fresh command line for each start
	protocolLine func(line string) (cmd string, connect bool) // reads a line of ProtocolLog
	pathPrefix   []string                                     // local prefixes the transfer log puts before FTP paths

	mu    sync.Mutex // guards proc and reset
	proc  *process   // nil when stopped
	reset LogMark    // set by ResetLogs
}

// Addr is host:port of the control connection.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// PID is the process id of the listening server, or 0 when stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// TLSConfig returns a client configuration that trusts the server, with a
// session cache of its own: FTPS data connections must resume the control
// connection's session, and a cache shared between control connections
// hands out the wrong one. Use one per control connection.
func (s *Server) TLSConfig() *tls.Config {
	c := &tls.Config{
		RootCAs:            s.RootCAs,
		ServerName:         s.Host,
		ClientSessionCache: tls.NewLRUClientSessionCache(4),
	}
	return c
}

func (s *Server) String() string { return s.Name + "@" + s.Addr() }

// URL returns ftp://host:port/path (ftps:// when implicit) with each path
// segment escaped, for clients that take URLs.
func (s *Server) URL(ftpPath string) string {
	scheme := "ftp"
	if s.Implicit {
		scheme = "ftps"
	}
	parts := strings.Split(path.Clean("/"+ftpPath), "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	u := scheme + "://" + s.Addr() + strings.Join(parts, "/")
	if strings.HasSuffix(ftpPath, "/") && !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return u
}

// Stop stops the server and every session process it forked. It is safe to
// call more than once; t.Cleanup calls it.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// Restart kills the server with its sessions, as a service manager's
// restart would, and starts it again on the same port with the same
// configuration; clients must reconnect. Logs are kept. Call it from the
// test's goroutine.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	var err error
	// The port may linger briefly in the kernel after the old listener.
	for i := 0; i < 5; i++ {
		if err = s.launch(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("restart %s: %v", s, err)
}

// tail returns the last n bytes of a file, for error messages.
func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// pickPorts finds a control port and a passive range of n ports after it,
// all free on 127.0.0.1 and on ProxyHost, where a proxy may take them. It
// stays below the kernel's ephemeral range (32768 and up) so that client
// sockets do not take them meanwhile; the random start keeps test binaries
// running at once apart. Ports free now may be taken before the server or
// its proxy binds them: the callers start over on other ports then. A
// variable so that a test can hand out a taken range.
var pickPorts = func(n int) (ctrl int, err error) {
	for try := 0; try < 200; try++ {
		base := 20000 + rand.IntN(12000-n-1)
		if portsFree(base, n+1) {
			return base, nil
		}
	}
	return 0, errors.New("no free run of loopback ports below 32000")
}

func portsFree(first, n int) bool {
	for p := first; p < first+n; p++ {
		for _, host := range []string{Host, ProxyHost} {
			l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
			if err != nil {
				return false
			}
			l.Close()
		}
	}
	return true
}

// newServer fills what both implementations share and starts the server,
// picking other ports when the first ones were taken meanwhile.
func newServer(t testing.TB, impl string, o Options, configure func(s *Server) error) *Server {
	t.Helper()
	requireRoot(t)
	st := o.Stage
	if st == nil {
		st = NewStage(t, stagegen.StageOptions{})
	}
	acct, err := ensureAccount(st.User)
	if err != nil {
		t.Fatalf("%s: account %s: %v", impl, st.User, err)
	}
	if err := reachable(st); err != nil {
		t.Fatalf("%s: %v", impl, err)
	}
	if err := grant(st, acct); err != nil {
		t.Fatalf("%s: give %s its stage: %v", impl, st.User, err)
	}
	if o.TraverseOnly {
		if err := traverseOnly(st); err != nil {
			t.Fatalf("%s: traverse-only parents: %v", impl, err)
		}
	}
	c, err := testCertificate()
	if err != nil {
		t.Fatalf("%s: certificate: %v", impl, err)
	}
	if o.PasvPorts <= 0 {
		o.PasvPorts = 40
	}
	s := &Server{
		Impl: impl, Host: Host, Implicit: o.Implicit, RootCAs: c.pool, Stage: st,
		AnonUser: "anonymous", AnonPassword: AnonPassword,
		User: acct.name, Password: acct.password,
		PasvAddress: o.PasvAddress, MaxTLS: o.MaxTLS,
		Dir: t.TempDir(),
	}
	s.Name = o.Name
	if s.Name == "" {
		s.Name = impl + "-explicit"
		if o.Implicit {
			s.Name = impl + "-implicit"
		}
	}
	if s.CAFile, _, err = c.write(s.Dir); err != nil {
		t.Fatalf("%s: write certificate: %v", s.Name, err)
	}
	s.XferLog = filepath.Join(s.Dir, "xferlog")
	s.Output = filepath.Join(s.Dir, "output.log")
	t.Cleanup(s.Stop)

	var lastErr error
	for try := 0; try < 3; try++ {
		s.Port = o.Port
		base, err := pickPorts(o.PasvPorts)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if s.Port == 0 {
			s.Port = base
		}
		s.PasvMin, s.PasvMax = base+1, base+o.PasvPorts
		if err := configure(s); err != nil {
			t.Fatalf("%s: configure: %v", s.Name, err)
		}
		if lastErr = s.launch(); lastErr == nil {
			t.Logf("%s listening on %s (passive %d-%d, dir %s)", s.Name, s.Addr(), s.PasvMin, s.PasvMax, s.Dir)
			return s
		}
		if o.Port != 0 {
			break
		}
	}
	t.Fatalf("%s: %v", s.Name, lastErr)
	return nil
}

// NewStage writes a stage into a fresh t.TempDir() and fails the test on error.
func NewStage(t testing.TB, opts stagegen.StageOptions) *stagegen.Stage {
	t.Helper()
	st, err := stagegen.WriteStage(filepath.Join(t.TempDir(), "stage"), opts)
	if err != nil {
		t.Fatalf("write stage: %v", err)
	}
	return st
}

// Matrix starts the interop matrix on one shared default stage: vsftpd with
// explicit TLS, vsftpd with implicit TLS, pure-ftpd with explicit TLS. A
// server whose binary is missing is left out with a note (under CI=true the
// test fails instead); with none available the test is skipped.
func Matrix(t testing.TB) []*Server {
	t.Helper()
	requireRoot(t)
	st := NewStage(t, stagegen.StageOptions{})
	var out []*Server
	if _, err := vsftpdBinary(); err != nil {
		missing(t, err.Error(), "make deps (or: apt-get install vsftpd)", true)
	} else {
		out = append(out,
			StartVsftpd(t, Options{Stage: st}),
			StartVsftpd(t, Options{Stage: st, Implicit: true}))
	}
	if _, err := pureFTPdBinary(); err != nil {
		missing(t, err.Error(), "make deps", true)
	} else {
		out = append(out, StartPureFTPd(t, Options{Stage: st}))
	}
	if len(out) == 0 {
		t.Skip("no FTPS server available: run make deps")
	}
	return out
}

// missing reports a missing prerequisite: fatal under CI=true, otherwise
// a skip, or only a log line when soft (the caller carries on without it).
func missing(t testing.TB, what, fix string, soft bool) {
	t.Helper()
	if isCI() {
		t.Fatalf("%s; fix: %s", what, fix)
	}
	if soft {
		t.Logf("leaving out: %s (fix: %s)", what, fix)
		return
	}
	t.Skipf("%s (fix: %s)", what, fix)
}

// isCI reports whether the tests run under CI, where nothing may be skipped.
func isCI() bool { return os.Getenv("CI") == "true" }

// need fails or skips the test unless it runs as root, find finds the
// server's program, and the "ftp" account that anonymous sessions run as
// exists; it returns the program.
func need(t testing.TB, impl string, find func() (string, error), fix string) string {
	t.Helper()
	requireRoot(t)
	bin, err := find()
	if err != nil {
		missing(t, err.Error(), fix, false)
	}
	if _, err := ftpAccount(); err != nil {
		t.Fatalf("%s: %v", impl, err)
	}
	return bin
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "FTPS test servers need root (chroot, setuid, a local account)",
			"run the tests as root, e.g. sudo make test", false)
	}
}

// findBinary looks on PATH, then in the given places.
func findBinary(name string, places ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, p := range places {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH or in %s", name, strings.Join(places, ", "))
}

// opensslConf writes an OpenSSL configuration capping the protocol version
// and returns the environment that makes the server read it. Neither server
// has a setting of its own for TLS 1.3.
func opensslConf(dir string, maxTLS uint16) ([]string, error) {
	env := os.Environ()
	if maxTLS == 0 {
		return env, nil
	}
	name, err := tlsVersionName(maxTLS)
	if err != nil {
		return nil, err
	}
	conf := "openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\nsystem_default = defaults\n" +
		"[defaults]\nMinProtocol = TLSv1.2\nMaxProtocol = " + name + "\n"
	p := filepath.Join(dir, "openssl.cnf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return append(env, "OPENSSL_CONF="+p), nil
}

// tlsVersionName names a protocol version as OpenSSL's configuration does.
func tlsVersionName(v uint16) (string, error) {
	switch v {
	case tls.VersionTLS12:
		return "TLSv1.2", nil
	case tls.VersionTLS13:
		return "TLSv1.3", nil
	}
	return "", fmt.Errorf("MaxTLS %#x: only TLS 1.2 and 1.3 are supported", v)
}
