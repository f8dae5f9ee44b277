package ftps

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jlaffaye/ftp"
)

// conn is one logged-in control connection and what it needs to open data
// connections of its own.
type conn struct {
	id      int64
	sc      *ftp.ServerConn
	tls     *tls.Config // with this connection's own session cache
	client  *Client
	created time.Time

	mu        sync.Mutex // guards control, ctl, peer, capture, lastUsed, lastPing, ready, tookReady
	control   net.Conn   // the TCP (or TLS) socket under the control channel, for deadlines
	ctl       *ctl       // the control channel as the FTP library reads and writes it
	peer      string     // the control connection's remote IP: data connections go there
	capture   *bytes.Buffer
	lastUsed  time.Time
	lastPing  time.Time
	ready     *ready // a data connection made ahead (ready.go)
	tookReady bool   // the operation in progress uses a data connection made ahead
}

// deadline bounds the next control-channel exchange.
func (cn *conn) deadline(d time.Duration) {
	cn.mu.Lock()
	ctl := cn.control
	cn.mu.Unlock()
	if ctl != nil {
		_ = ctl.SetDeadline(time.Now().Add(d))
	}
}

func (cn *conn) close() {
	cn.dropReady()
	cn.deadline(2 * time.Second)
	_ = cn.sc.Quit()
}

// dial opens and logs in one control connection.
func (c *Client) dial(ctx context.Context) (*conn, error) {
	cfg := c.cfg
	cn := &conn{id: c.nextID.Add(1), client: c, created: time.Now()}
	if cfg.TLS != Plaintext {
		cn.tls = c.tlsConfig()
	}
	dialCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	opts := []ftp.DialOption{
		ftp.DialWithDialFunc(func(network, addr string) (net.Conn, error) {
			return cn.dialSocket(dialCtx, network, addr)
		}),
		ftp.DialWithDisabledEPSV(cfg.DisableEPSV),
		ftp.DialWithDisabledMLSD(c.noMLSD.Load()),
	}
	if cfg.TLS != Plaintext {
		// The dial function sets up TLS itself (AUTH TLS first for explicit
		// TLS), so that the library's commands pass through ctl in clear
		// text; passing the config makes the library send PBSZ 0 and PROT P
		// after login.
		opts = append(opts, ftp.DialWithTLS(cn.tls))
	}

	sc, err := ftp.Dial(cfg.Addr(), opts...)
	if err != nil {
		return nil, c.wrapDialError(err)
	}
	cn.sc = sc
	cn.deadline(cfg.Timeout)
	if err := sc.Login(cfg.User, cfg.Password); err != nil {
		_ = sc.Quit()
		var te *textproto.Error
		if errors.As(err, &te) && (te.Code == ftp.StatusNotLoggedIn || te.Code == ftp.StatusBadCommand) {
			return nil, fmt.Errorf("login failed for %s at %s: %s: %w", cfg.User, cfg.Host, te.Msg, ErrLogin)
		}
		return nil, fmt.Errorf("login as %s at %s: %w", cfg.User, cfg.Host, classify(err))
	}
	cn.lastUsed = time.Now()
	c.stats.dials.Add(1)
	c.log.Debug("connected", "conn", cn.id, "host", cfg.Host, "user", cfg.User)
	return cn, nil
}

func (c *Client) wrapDialError(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code == ftp.StatusNotAvailable {
		return fmt.Errorf("connect to %s: %w", c.cfg.Addr(), &tooManyError{msg: te.Msg})
	}
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ve) {
		return fmt.Errorf("connect to %s: certificate not trusted: %w "+
			"(for a private CA use --ca-file; for a local test server --insecure-skip-verify)", c.cfg.Addr(), err)
	}
	return fmt.Errorf("connect to %s: %w", c.cfg.Addr(), err)
}

// dialSocket is called by the FTP library for the control connection (first)
// and for every data connection (after). Data connections always go to the
// control connection's peer: a server behind NAT may announce an address we
// cannot reach in its PASV reply, and following an announced address is a
// way to be sent somewhere else.
func (cn *conn) dialSocket(ctx context.Context, network, addr string) (net.Conn, error) {
	c := cn.client
	d := net.Dialer{Timeout: c.cfg.Timeout, KeepAlive: 15 * time.Second}
	cn.mu.Lock()
	first := cn.control == nil
	peer := cn.peer
	cn.mu.Unlock()

	if first {
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if tcp, ok := raw.RemoteAddr().(*net.TCPAddr); ok {
			peer = tcp.IP.String()
		}
		// The greeting, AUTH TLS and the handshake that follow get a
		// deadline too: a server that accepts and then says nothing must
		// not hold the dial for ever. Login sets the next one.
		_ = raw.SetDeadline(time.Now().Add(c.cfg.Timeout))
		var sock net.Conn = raw
		ch := &ctl{client: c}
		if c.cfg.TLS != Plaintext {
			if c.cfg.TLS == Explicit {
				greeting, err := authTLS(raw)
				if err != nil {
					_ = raw.Close()
					return nil, err
				}
				ch.pending = greeting // the library reads the greeting first
			}
			tc := tls.Client(raw, cn.tls)
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = raw.Close()
				var ve *tls.CertificateVerificationError
				if errors.As(err, &ve) {
					return nil, err
				}
				return nil, fmt.Errorf("TLS handshake: %w", err)
			}
			c.noteKeyExchange(tc.ConnectionState())
			sock = tc
		}
		ch.Conn = sock
		cn.mu.Lock()
		cn.control, cn.ctl, cn.peer = sock, ch, peer
		cn.mu.Unlock()
		return ch, nil
	}

	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("data address %q: %w", addr, err)
	}
	if dc := cn.takeReady(port); dc != nil {
		return dc, nil
	}
	dc, err := cn.dialData(port, true)
	if err != nil {
		return nil, err
	}
	return dc, nil
}

// authTLS reads the server's greeting on a new control connection and
// asks for TLS (explicit TLS, RFC 4217). It returns the greeting, for the
// FTP library to read as if it came over TLS.
func authTLS(raw net.Conn) ([]byte, error) {
	r := bufio.NewReader(raw)
	tp := textproto.NewReader(r)
	code, msg, err := tp.ReadResponse(ftp.StatusReady)
	if err != nil {
		return nil, err // a *textproto.Error for 421 and the like
	}
	greeting := []byte(fmt.Sprintf("%d %s\r\n", code, strings.ReplaceAll(msg, "\n", " ")))
	if _, err := raw.Write([]byte("AUTH TLS\r\n")); err != nil {
		return nil, err
	}
	if _, _, err := tp.ReadResponse(ftp.StatusAuthOK); err != nil {
		return nil, fmt.Errorf("AUTH TLS: %w", err)
	}
	if r.Buffered() > 0 {
		return nil, errors.New("AUTH TLS: the server sent more than its reply")
	}
	return greeting, nil
}

// dialData opens a data connection to port on the control connection's
// peer. Its TLS handshake starts at once, in the background; with now
// false (a connection made ahead) it has no deadline until start.
func (cn *conn) dialData(port string, now bool) (*dataConn, error) {
	c := cn.client
	if _, err := strconv.Atoi(port); err != nil {
		return nil, fmt.Errorf("data port %q: %w", port, err)
	}
	cn.mu.Lock()
	peer := cn.peer
	cn.mu.Unlock()
	target := net.JoinHostPort(peer, port)
	d := net.Dialer{Timeout: c.cfg.Timeout, KeepAlive: 15 * time.Second}
	dctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	raw, err := d.DialContext(dctx, "tcp", target)
	if err != nil {
		return nil, fmt.Errorf("data connection to %s: %w", target, err)
	}
	c.stats.dataConns.Add(1)
	dc := &dataConn{Conn: raw, raw: raw, owner: cn, timeout: c.cfg.Timeout}
	if now {
		dc.start(c.cfg.Timeout)
	}
	if cn.tls != nil {
		// Servers start TLS on a data socket only once the transfer command
		// has come, so waiting for the handshake here would wait for ever
		// (and waiting for it at the first read, as the FTP library does,
		// costs a round trip after the command's reply). Started now, in the
		// background, the ClientHello waits in the server's socket and the
		// handshake overlaps the command's round trip. The first read joins
		// it. The deadline bounds a server that never answers it.
		cfg := cn.tls
		if kx := keyExchangesFrom(tls.CurveID(c.curve.Load())); kx != nil && !slices.Equal(kx, cfg.CurvePreferences) {
			cfg = cfg.Clone() // the session cache stays shared: it is an interface
			cfg.CurvePreferences = kx
		}
		tc := tls.Client(raw, cfg)
		go func() {
			if tc.Handshake() == nil {
				_ = raw.SetWriteDeadline(time.Time{})
				c.noteKeyExchange(tc.ConnectionState())
			}
		}()
		dc.Conn = tc
	}
	return dc, nil
}

// dataConn bounds each read by a deadline, so a stalled server cannot hang a
// reader, and copies listing bytes aside when its control connection asks.
type dataConn struct {
	net.Conn
	raw     net.Conn // the TCP socket under TLS
	owner   *conn
	timeout time.Duration
	noted   bool // the TLS version was recorded
}

// start bounds the data connection's handshake and writes from now on; its
// reads get a deadline each.
func (d *dataConn) start(timeout time.Duration) {
	_ = d.raw.SetDeadline(time.Now().Add(timeout))
}

func (d *dataConn) Read(p []byte) (int, error) {
	_ = d.Conn.SetReadDeadline(time.Now().Add(d.timeout))
	n, err := d.Conn.Read(p)
	if n > 0 && !d.noted {
		d.noted = true
		if v := d.tlsVersion(); v != 0 {
			d.owner.client.stats.tlsVersion.Store(uint32(v))
		}
	}
	if n > 0 {
		d.owner.mu.Lock()
		capture := d.owner.capture
		over := false
		if capture != nil {
			capture.Write(p[:n])
			over = capture.Len() > maxListing
			// Listings are parsed from the capture. The FTP library is
			// handed one blank line per read, shorter than its own line
			// limit (64 KiB): a long line cannot fail a listing, and the
			// library's parsing costs next to nothing.
			for i := range p[:n-1] {
				p[i] = ' '
			}
			p[n-1] = '\n'
		}
		d.owner.mu.Unlock()
		d.owner.client.stats.bytesRead.Add(int64(n))
		if over {
			return n, errListingTooLarge
		}
	}
	return n, err
}

// maxListing bounds the bytes of one directory listing: over half a
// million entries, far beyond any stage, and short of what a listing
// without end from a broken server would cost in memory.
const maxListing = 64 << 20

var errListingTooLarge = fmt.Errorf("listing longer than %d MiB: refused", maxListing>>20)

// tlsVersion is the protocol a data connection negotiated, or 0.
func (d *dataConn) tlsVersion() uint16 {
	if tc, ok := d.Conn.(*tls.Conn); ok {
		return tc.ConnectionState().Version
	}
	return 0
}
