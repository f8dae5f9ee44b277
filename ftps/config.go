package ftps

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// TLSMode says how a control connection is protected.
type TLSMode int

const (
	// Explicit connects in clear and upgrades with AUTH TLS (port 21).
	Explicit TLSMode = iota
	// Implicit starts TLS at once (port 990).
	Implicit
	// Plaintext sends everything, password included, in clear. Only for
	// local experiments; the staging server refuses it.
	Plaintext
)

func (m TLSMode) String() string {
	switch m {
	case Explicit:
		return "explicit"
	case Implicit:
		return "implicit"
	case Plaintext:
		return "plaintext"
	}
	return "unknown"
}

// ParseTLSMode reads the value of a --tls flag.
func ParseTLSMode(s string) (TLSMode, error) {
	switch strings.ToLower(s) {
	case "explicit", "":
		return Explicit, nil
	case "implicit":
		return Implicit, nil
	}
	return 0, fmt.Errorf("--tls %q: want explicit or implicit", s)
}

// DefaultHost is the MAST archive's FTPS server.
const DefaultHost = "archive.stsci.edu"

// Config describes one server and how to talk to it.
type Config struct {
	Host     string
	Port     int // 0: 21 for explicit TLS and plaintext, 990 for implicit
	TLS      TLSMode
	User     string // "anonymous" when empty
	Password string // for anonymous users, an email address

	RootCAs            *x509.CertPool // nil: the system roots
	InsecureSkipVerify bool
	MaxTLSVersion      uint16 // 0: the newest Go supports

	MaxConns    int           // control connections at most; default 4
	Timeout     time.Duration // deadline of one network step; default 30s
	KeepAlive   time.Duration // NOOP an idle connection this often; default 30s
	IdleTimeout time.Duration // close a connection idle this long; default 5m
	Retries     int           // further attempts after a transient failure; default 3
	DisableEPSV bool

	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.User == "" {
		c.User = "anonymous"
	}
	if c.Port == 0 {
		c.Port = 21
		if c.TLS == Implicit {
			c.Port = 990
		}
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 4
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 30 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.Retries < 0 {
		c.Retries = 0
	} else if c.Retries == 0 {
		c.Retries = 3
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Addr is host:port of the control connection.
func (c Config) Addr() string {
	c = c.withDefaults()
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}

// LoadCAFile reads PEM certificates to trust instead of the system roots.
func LoadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// ErrSFTP explains why an sftp:// address cannot work.
var ErrSFTP = errors.New("sftp is not FTP: it runs over SSH and cannot talk to an FTPS server. " +
	"The MAST staging server speaks FTPS only; use --host HOST (explicit TLS, port 21) " +
	"or ftps://HOST (implicit TLS, port 990)")

// ParseAddress reads a server given as a bare host, host:port or a URL.
// ftp:// and ftpes:// mean explicit TLS, ftps:// implicit TLS. sftp:// is
// refused with ErrSFTP. A URL path becomes dir.
func ParseAddress(s string) (host string, port int, mode TLSMode, dir string, err error) {
	mode = Explicit
	rest := s
	if i := strings.Index(s, "://"); i >= 0 {
		scheme := strings.ToLower(s[:i])
		rest = s[i+3:]
		switch scheme {
		case "ftp", "ftpes":
			mode = Explicit
		case "ftps":
			mode = Implicit
		case "sftp", "ssh", "scp":
			return "", 0, 0, "", ErrSFTP
		default:
			return "", 0, 0, "", fmt.Errorf("address %q: unknown scheme %q (want ftp://, ftpes:// or ftps://)", s, scheme)
		}
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		dir = rest[i:]
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		return "", 0, 0, "", fmt.Errorf("address %q: give the user with --user, and never a password in an address", s)
	}
	host = rest
	if h, p, splitErr := net.SplitHostPort(rest); splitErr == nil {
		host = h
		port, err = strconv.Atoi(p)
		if err != nil || port <= 0 || port > 65535 {
			return "", 0, 0, "", fmt.Errorf("address %q: bad port %q", s, p)
		}
	}
	if host == "" {
		return "", 0, 0, "", fmt.Errorf("address %q: no host", s)
	}
	return host, port, mode, dir, nil
}

// tlsConfig builds the TLS settings of one control connection. Each gets its
// own session cache: a cache shared between control connections hands a
// data connection another connection's session, which servers refuse.
func (c *Client) tlsConfig() (*tls.Config, *sessionCache) {
	sc := &sessionCache{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	return &tls.Config{
		ServerName:         c.cfg.Host,
		RootCAs:            c.cfg.RootCAs,
		InsecureSkipVerify: c.cfg.InsecureSkipVerify,
		MinVersion:         tls.VersionTLS12,
		MaxVersion:         uint16(c.tlsMax.Load()),
		ClientSessionCache: sc,
		CurvePreferences:   keyExchangesFrom(tls.CurveID(c.curve.Load())),
	}, sc
}

// keyExchanges is crypto/tls's own order of preference: a ClientHello
// carries a key share for the first one allowed (and, for a hybrid, for
// X25519 too).
var keyExchanges = []tls.CurveID{tls.X25519MLKEM768, tls.SecP256r1MLKEM768, tls.SecP384r1MLKEM1024,
	tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}

// keyExchangesFrom returns the key exchanges to offer a server that chose
// id last time: id and those after it, so that the ClientHello's key share
// is the one the server wants. A TLS 1.3 server that wants a group it got
// no share for answers with a HelloRetryRequest, which costs a round trip
// per handshake, data connections included; vsftpd accepts P-256 only.
// The groups left out are ones the server passed over. nil (crypto/tls's
// defaults) when id is 0 or unknown.
func keyExchangesFrom(id tls.CurveID) []tls.CurveID {
	i := slices.Index(keyExchanges, id)
	if id == 0 || i < 0 {
		return nil
	}
	return keyExchanges[i:]
}

// noteKeyExchange records what a server chose in a finished handshake.
func (c *Client) noteKeyExchange(st tls.ConnectionState) {
	if st.CurveID != 0 {
		c.curve.Store(uint32(st.CurveID))
	}
}

// sessionCache is one control connection's TLS sessions, which its data
// connections resume. It keeps a session when a handshake fails: a data
// connection's handshake starts before the transfer command, and fails
// whenever the server refuses the command without touching the data socket
// (550), which says nothing against the session. crypto/tls would drop the
// session then, and the next data connection, without one, be refused.
//
// It also records whether the server ever handed out a session: under
// TLS 1.2 crypto/tls keeps one only from a session ticket (it cannot
// resume by session ID), so none means no data connection can resume.
type sessionCache struct {
	tls.ClientSessionCache
	issued atomic.Bool
}

func (s *sessionCache) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		s.issued.Store(true)
		s.ClientSessionCache.Put(key, cs)
	}
}

// checkPath refuses a path that could inject a command.
func checkPath(p string) error {
	if strings.ContainsAny(p, "\r\n\x00") {
		return fmt.Errorf("%q: %w", p, ErrBadName)
	}
	return nil
}
