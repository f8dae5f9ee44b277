// The wire: what this client says to a server beyond jlaffaye/ftp.
//
// jlaffaye/ftp speaks FTP for this client; this file holds everything the
// client sends or reads around it, so that what goes on the wire is
// written down in one place. In the order a connection meets them:
//
//  1. AUTH TLS (explicit TLS). The dial function reads the greeting, sends
//     AUTH TLS and starts TLS itself, then replays the greeting to the
//     library, so that the library's commands pass through ctl in clear
//     text. The library is told the socket is TLS already (DialWithTLS),
//     which makes it send PBSZ 0 and PROT P after login.
//  2. EPSV ahead. A connection going back to the pool sends an EPSV of its
//     own and connects the data socket to the announced port, starting its
//     TLS handshake (the ClientHello waits in the server's socket). The
//     library's next EPSV is answered from the kept 229 without a round
//     trip, and its dial is handed the socket already made. Servers accept
//     the data connection once the transfer command comes, whenever that
//     is (RFC 959 asks nothing more of a passive listener), so a transfer
//     costs the command's round trip and the handshake's rest instead of
//     three round trips more. After a transfer the connection reads its
//     last reply (for one cut short, the 426, while no caller waits) and
//     only then sends its next EPSV.
//     A server may drop a data connection that speaks before the transfer
//     command (pyftpdlib closes one that is readable early, then waits for
//     another): after the first such drop the TCP connection is still
//     made ahead, but TLS starts only once the command is answered, as
//     curl's does, and the operation is tried again at once.
//  3. REST with its transfer command. The library waits for REST's 350
//     before sending RETR: a round trip for nothing, since servers accept
//     the offset. REST is held back and written with RETR in one write;
//     the library reads a made-up 350, and the real reply is checked when
//     it comes. A server that refuses it gets REST on its own from then on.
//  4. Raw listing capture. Listing bytes are copied aside from the data
//     connection and parsed by this package; the library is handed one
//     blank line per read, so its own line limit and parser never fail a
//     listing.
//  5. mastfs check only (check.go): a FEAT of its own, to report what the
//     server offers, and one NLST over a data connection that does not
//     resume the TLS session, to learn whether the server demands reuse.
//
// TestWireSequence pins the commands on the wire for a login, a listing
// and a ranged read: an upgrade of the library that changes its order
// fails it.

package ftps

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jlaffaye/ftp"
)

// readyMaxAge bounds how long a data connection made ahead waits for its
// transfer; an older one is replaced when the pool checks its idle
// connections, so a firewall that forgets quiet connections is not met
// at the next read.
const readyMaxAge = 2 * time.Minute

// ctl is the control channel as the FTP library sees it, in clear text
// (above TLS): what lets the client send commands of its own while the
// connection is idle and answer the library's next EPSV itself.
type ctl struct {
	net.Conn         // the control socket: TLS, or plain TCP
	client   *Client // nil: no REST goes ahead of its reply

	mu        sync.Mutex // guards pending, epsv, rest, checkRest
	pending   []byte     // bytes for the library to read before the socket's
	epsv      []byte     // a 229 reply kept for the library's next EPSV; nil: none
	rest      []byte     // a REST line held back, to go with the transfer command
	checkRest bool       // the next reply on the socket is the held REST's, ours to check
}

var epsvCommand = []byte("EPSV\r\n")

// restAccepted is what the library reads for a REST held back. The real
// reply is checked when it comes: a REST refused ends the connection.
var restAccepted = []byte("350 Restart position accepted.\r\n")

// errRestRefused is a server's refusal of a REST sent together with its
// transfer command: the connection is out of step, and the transfer must
// not be read (it would start at 0).
var errRestRefused = errors.New("REST refused")

// Write sends the library's commands on, except an EPSV that a reply is
// kept for (the library reads that reply instead), and a REST, held back
// to go in one write with the transfer command that follows it: the
// library waits for REST's reply before sending the command, a round trip
// for nothing when the server accepts the offset, as servers do.
func (c *ctl) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.epsv != nil && bytes.EqualFold(p, epsvCommand) {
		c.pending = append(c.pending, c.epsv...)
		c.epsv = nil
		c.mu.Unlock()
		return len(p), nil
	}
	if c.epsv != nil && changesPassive(p) {
		c.epsv = nil // the server's listener is replaced: the kept reply no longer holds
	}
	if c.rest == nil && hasVerb(p, "REST") && c.client != nil && !c.client.noPipeline.Load() {
		c.rest = bytes.Clone(p)
		c.pending = append(c.pending, restAccepted...)
		c.mu.Unlock()
		return len(p), nil
	}
	if c.rest != nil {
		line := append(c.rest, p...)
		c.rest, c.checkRest = nil, true
		c.mu.Unlock()
		if _, err := c.Conn.Write(line); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// changesPassive reports whether a command line replaces the server's
// passive listener.
func changesPassive(p []byte) bool {
	for _, verb := range []string{"PASV", "EPSV", "PORT", "EPRT", "LPSV", "LPRT"} {
		if hasVerb(p, verb) {
			return true
		}
	}
	return false
}

// hasVerb reports whether a command line starts with verb.
func hasVerb(p []byte, verb string) bool {
	return len(p) > len(verb) && strings.EqualFold(string(p[:len(verb)]), verb) &&
		(p[len(verb)] == ' ' || p[len(verb)] == '\r')
}

func (c *ctl) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		c.mu.Unlock()
		return n, nil
	}
	check := c.checkRest
	c.checkRest = false
	c.mu.Unlock()
	if check {
		code, msg, err := c.reply()
		if err != nil {
			return 0, err
		}
		if code != 350 {
			c.client.noPipeline.Store(true)
			c.client.log.Info("server refused a REST sent with its transfer command; REST waits for its reply from now on",
				"reply", fmt.Sprintf("%d %s", code, msg))
			return 0, fmt.Errorf("%w: %d %s (%w)", errRestRefused, code, msg, errStaleConn)
		}
		return c.Read(p)
	}
	return c.Conn.Read(p)
}

// reply reads one reply from the socket, while the library waits. Bytes
// read past it go to the library.
func (c *ctl) reply() (int, string, error) {
	r := bufio.NewReader(c.Conn)
	code, msg, err := textproto.NewReader(r).ReadResponse(0)
	if n := r.Buffered(); n > 0 {
		rest, _ := r.Peek(n)
		c.mu.Lock()
		c.pending = append(c.pending, rest...)
		c.mu.Unlock()
	}
	return code, msg, err
}

// exchange sends one command of the client's own and reads its reply,
// while the library is not using the connection.
func (c *ctl) exchange(cmd string) (int, string, error) {
	if _, err := c.Conn.Write([]byte(cmd + "\r\n")); err != nil {
		return 0, "", err
	}
	return c.reply()
}

// ready is a data connection made ahead of its transfer.
type ready struct {
	port string
	dc   *dataConn
	made time.Time
}

// prepare makes a data connection ahead for cn, if it has none and the
// server goes along. It returns an error only when the control connection
// is no longer usable.
func (c *Client) prepare(cn *conn) error {
	cn.mu.Lock()
	ctl, has := cn.ctl, cn.ready != nil
	cn.mu.Unlock()
	if ctl == nil || has || c.noReady.Load() || c.cfg.DisableEPSV {
		return nil
	}
	cn.deadline(c.cfg.Timeout)
	code, msg, err := ctl.exchange("EPSV")
	if err != nil {
		var te *textproto.Error
		if errors.As(err, &te) {
			// A refusal leaves the connection in step; the library falls
			// back to PASV on its own.
			c.noteNoReady(fmt.Sprintf("EPSV answered %d %s", te.Code, te.Msg))
			return nil
		}
		return err
	}
	port, err := epsvPort(msg)
	if code != 229 || err != nil {
		c.noteNoReady(fmt.Sprintf("EPSV answered %d %s", code, msg))
		return nil
	}
	dc, err := cn.dialData(port, false)
	if err != nil {
		// The server listens on that port for a while; the library's own
		// EPSV will replace the listener.
		c.log.Debug("data connection made ahead failed", "conn", cn.id, "err", err)
		return nil
	}
	cn.mu.Lock()
	cn.ready = &ready{port: port, dc: dc, made: time.Now()}
	cn.mu.Unlock()
	ctl.mu.Lock()
	ctl.epsv = []byte(fmt.Sprintf("%d %s\r\n", code, msg))
	ctl.mu.Unlock()
	return nil
}

// noteNoReady stops making data connections ahead, for good: the server
// does not take part.
func (c *Client) noteNoReady(why string) {
	if !c.noReady.Swap(true) {
		c.log.Info("server refused a data connection made ahead; transfers open their own", "reason", why)
	}
}

// takeReady hands over the data connection made ahead to port, or nil.
func (cn *conn) takeReady(port string) *dataConn {
	cn.mu.Lock()
	r := cn.ready
	cn.ready = nil
	cn.mu.Unlock()
	if r == nil {
		return nil
	}
	if r.port != port || (r.dc.hs != nil && cn.client.lateTLS.Load()) {
		// Another listener, or one made before handshakes ahead were
		// turned off: the server has dropped it, or will.
		r.dc.Close()
		return nil
	}
	r.dc.start(cn.client.cfg.Timeout)
	cn.client.stats.readyUsed.Add(1)
	cn.mu.Lock()
	cn.tookReady = true
	cn.mu.Unlock()
	return r.dc
}

// dropReady closes the data connection made ahead, if any, and forgets
// its EPSV reply: the library's next EPSV goes to the server.
func (cn *conn) dropReady() {
	cn.mu.Lock()
	r, ctl := cn.ready, cn.ctl
	cn.ready = nil
	cn.mu.Unlock()
	if ctl != nil {
		ctl.mu.Lock()
		ctl.epsv = nil
		ctl.mu.Unlock()
	}
	if r != nil {
		r.dc.Close()
	}
}

// staleReady reports whether cn's data connection made ahead is too old to trust.
func (cn *conn) staleReady(now time.Time) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.ready != nil && now.Sub(cn.ready.made) > readyMaxAge
}

// epsvPort returns the port of a 229 reply: "Entering Extended Passive
// Mode (|||port|)".
func epsvPort(msg string) (string, error) {
	i := strings.Index(msg, "(")
	j := strings.LastIndex(msg, ")")
	if i < 0 || j <= i+1 {
		return "", fmt.Errorf("EPSV reply %q", msg)
	}
	f := strings.Split(msg[i+1:j], string(msg[i+1]))
	if len(f) != 5 {
		return "", fmt.Errorf("EPSV reply %q", msg)
	}
	if p, err := strconv.Atoi(f[3]); err != nil || p <= 0 || p > 65535 {
		return "", fmt.Errorf("EPSV reply %q: port", msg)
	}
	return f[3], nil
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
		dc.Conn = tc
		if !c.lateTLS.Load() {
			dc.hs = make(chan struct{})
			go func() {
				defer close(dc.hs)
				dc.hsErr = tc.Handshake()
				if dc.hsErr == nil {
					_ = raw.SetWriteDeadline(time.Time{})
					c.noteKeyExchange(tc.ConnectionState())
				}
			}()
		}
		// Otherwise the connection stays silent until the first read,
		// which comes after the transfer command's reply (item 2 above).
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

	hs    chan struct{} // closed when a handshake started ahead ends; nil: none was
	hsErr error         // that handshake's result, once hs is closed
}

// handshakeWait bounds the wait for a data connection's TLS handshake once
// the transfer command is answered: the server is then meant to answer
// it at once, and one that does not must not hold a reader for the whole
// timeout.
const handshakeWait = 10 * time.Second

// ahead waits for the TLS handshake started ahead of the transfer command,
// if any. A server that dropped or ignored a data connection that spoke
// first (pyftpdlib closes one that is readable before its command, then
// waits for another) turns early handshakes off: the error asks for the
// operation to be tried again at once, and the control connection, whose
// server waits for a connection that will not come, is cut.
func (d *dataConn) ahead() error {
	if d.hs == nil {
		return nil
	}
	select {
	case <-d.hs:
	default:
		_ = d.raw.SetDeadline(time.Now().Add(min(d.timeout, handshakeWait)))
		<-d.hs
	}
	err := d.hsErr
	d.hs = nil
	if err == nil || !silentDrop(err) || d.owner.cannotResume() {
		// Without a session to resume, a server that demands reuse drops
		// the connection whenever its handshake happens: the reply to the
		// command says so (opError).
		return err
	}
	c := d.owner.client
	if !c.lateTLS.Swap(true) {
		c.log.Info("server dropped a data connection whose TLS handshake began before the transfer command; "+
			"data connections stay silent until the command from now on", "err", err)
	}
	d.owner.deadline(0) // its reply will not come: whoever reads it fails at once
	d.Close()
	return fmt.Errorf("data connection: %w (%w)", errStaleConn, err)
}

// silentDrop reports whether a handshake failed without a word of TLS from
// the server: a reset, an end of stream or a time-out.
func silentDrop(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || (errors.As(err, &ne) && ne.Timeout())
}

// start bounds the data connection's handshake and writes from now on; its
// reads get a deadline each.
func (d *dataConn) start(timeout time.Duration) {
	_ = d.raw.SetDeadline(time.Now().Add(timeout))
}

func (d *dataConn) Read(p []byte) (int, error) {
	if err := d.ahead(); err != nil {
		return 0, err
	}
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
