package ftps

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"sync"
	"time"

	"github.com/jlaffaye/ftp"
)

// conn is one logged-in control connection and what it needs to open data
// connections of its own.
type conn struct {
	id      int64
	sc      *ftp.ServerConn
	tls     *tls.Config   // with this connection's own session cache
	tickets *sessionCache // that cache: did the server hand out a session to resume?
	client  *Client
	created time.Time

	mu        sync.Mutex          // guards control, ctl, peer, state, capture, lastUsed, lastPing, ready, tookReady, data
	control   net.Conn            // the TCP (or TLS) socket under the control channel, for deadlines
	ctl       *ctl                // the control channel as the FTP library reads and writes it
	peer      string              // the control connection's remote IP: data connections go there
	state     tls.ConnectionState // of the control connection's handshake; zero for plain FTP
	capture   *bytes.Buffer
	lastUsed  time.Time
	lastPing  time.Time
	ready     *ready    // a data connection made ahead (wire.go)
	tookReady bool      // the operation in progress uses a data connection made ahead
	data      *dataConn // the data connection of the operation in progress, if any
}

// negotiated is the TLS version the control connection negotiated, or 0.
func (cn *conn) negotiated() uint16 {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.state.Version
}

// dataAhead waits for the handshake of the transfer's data connection, if
// it began ahead of the command (wire.go): a server that dropped it is
// found before a stream is handed out, and the read tried again at once.
func (cn *conn) dataAhead() error {
	cn.mu.Lock()
	dc := cn.data
	cn.mu.Unlock()
	if dc == nil {
		return nil
	}
	return dc.ahead()
}

// dialStep is a stage of opening a control connection, as Check reports them.
type dialStep int

const (
	stepTCP   dialStep = iota // the TCP connection is made
	stepTLS                   // the control connection's TLS handshake is done
	stepLogin                 // logged in, with PBSZ and PROT set
)

// step tells Check, when it watches, that cn got through s.
func (c *Client) step(s dialStep, cn *conn) {
	if c.onStep != nil {
		c.onStep(s, cn)
	}
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
		cn.tls, cn.tickets = c.tlsConfig()
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
	c.step(stepLogin, cn)
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
		cn.mu.Lock()
		cn.peer = peer
		cn.mu.Unlock()
		c.step(stepTCP, cn)
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
			cn.mu.Lock()
			cn.state = tc.ConnectionState()
			cn.mu.Unlock()
			c.step(stepTLS, cn)
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
	dc := cn.takeReady(port)
	if dc == nil {
		if dc, err = cn.dialData(port, true); err != nil {
			return nil, err
		}
	}
	cn.mu.Lock()
	cn.data = dc
	cn.mu.Unlock()
	return dc, nil
}
