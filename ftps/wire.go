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
//     three round trips more. The next EPSV goes out as soon as a
//     transfer's data connection closes, before the transfer's last reply
//     (226, or 426 for one cut short) is read: servers read commands in
//     order, so it is answered right after that reply, and the connection
//     is ready again a round trip sooner (one round trip, then the
//     connect, instead of two and the connect). While that reply is owed,
//     replies are read whole and sorted, so the library reads the
//     transfer's reply and never the EPSV's. A server that reads commands
//     during a transfer (pure-ftpd answers "500 Unknown command") gets
//     EPSV after the transfer's reply from then on.
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
// fails it. TestEPSVWithTransferEnd pins when the EPSV of item 2 goes out.

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
	"sync/atomic"
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

	mu        sync.Mutex // guards pending, epsv, rest, checkRest, owed, gave, late, held, forLib, moved
	pending   []byte     // bytes for the library to read before the socket's
	epsv      []byte     // a 229 reply kept for the library's next EPSV; nil: none
	rest      []byte     // a REST line held back, to go with the transfer command
	checkRest bool       // the next reply on the socket is the held REST's, ours to check

	// An EPSV sent as a transfer's data connection closed (item 2) is
	// answered after the transfer's last reply, which the library reads:
	// while its reply is owed, replies are read whole and sorted, so that
	// the library never reads ours.
	owed   bool   // that EPSV's reply is not yet ours
	gave   bool   // the library has had the transfer's reply: the next reply is the EPSV's
	late   []byte // the EPSV's reply, read ahead of the library's next one
	held   []byte // bytes read past the transfer's reply, not yet sorted
	forLib bool   // the library sent an EPSV of its own meanwhile: it gets that reply
	moved  bool   // the library replaced the passive listener meanwhile: the reply is stale
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
	if c.owed && !c.forLib && bytes.EqualFold(p, epsvCommand) {
		// The EPSV already sent answers it.
		if c.late != nil {
			c.pending = append(c.pending, c.late...)
			c.owed, c.gave, c.late, c.moved = false, false, nil, false
		} else {
			c.forLib = true
		}
		c.mu.Unlock()
		return len(p), nil
	}
	if c.owed && changesPassive(p) {
		c.moved = true
	}
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
	sort := c.owed && (!c.gave || c.late == nil)
	check := c.checkRest && !sort
	if check {
		c.checkRest = false
	}
	c.mu.Unlock()
	if sort {
		if err := c.sortReply(); err != nil {
			return 0, err
		}
		return c.Read(p)
	}
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

// maxReply bounds one reply read whole: far beyond any server's, and
// short of what a reply without end from a broken server would cost.
const maxReply = 64 << 10

// cutReply reads from the socket after buf until buf holds a whole reply,
// and returns that reply and the bytes after it.
func (c *ctl) cutReply(buf []byte) (reply, after []byte, err error) {
	var tmp [4096]byte
	for {
		if n := replyLen(buf); n > 0 {
			return buf[:n], buf[n:], nil
		}
		if len(buf) > maxReply {
			return nil, nil, fmt.Errorf("reply longer than %d KiB", maxReply>>10)
		}
		n, err := c.Conn.Read(tmp[:])
		buf = append(buf, tmp[:n]...)
		if err != nil && replyLen(buf) == 0 {
			return nil, nil, err
		}
	}
}

// replyLen is the length of the first whole reply in b (RFC 959 4.2: one
// line, or lines from "ddd-" to "ddd "), or 0 while b holds none.
func replyLen(b []byte) int {
	var code []byte
	for off := 0; ; {
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			return 0
		}
		line := b[off : off+i+1]
		off += i + 1
		switch {
		case code == nil && (len(line) < 4 || line[3] != '-'):
			return off // a one-line reply, or one the library will refuse
		case code == nil:
			code = line[:3]
		case len(line) >= 4 && bytes.Equal(line[:3], code) && line[3] == ' ':
			return off
		}
	}
}

// sortReply reads one reply while an EPSV of ours is owed, and gives it
// to the library or keeps it, by its place: the transfer's reply comes
// first, then the EPSV's. A 229 before the transfer's reply is the EPSV's
// too: a server that answers commands during a transfer.
func (c *ctl) sortReply() error {
	c.mu.Lock()
	held := c.held
	c.held = nil
	c.mu.Unlock()
	reply, after, err := c.cutReply(held)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ours := c.gave || outOfTurn(reply)
	switch {
	case !ours:
		c.gave = true
		c.pending = append(c.pending, reply...)
		c.held = bytes.Clone(after)
		return nil
	case c.forLib:
		// The library asked for a listener itself: the reply is its own.
		c.owed, c.gave, c.forLib, c.moved = false, false, false, false
		c.pending = append(c.pending, reply...)
	default:
		c.late = bytes.Clone(reply)
	}
	if c.gave || !c.owed {
		c.pending = append(c.pending, after...)
	} else {
		c.held = bytes.Clone(after) // the transfer's reply is still to come
	}
	return nil
}

// outOfTurn reports whether a reply that comes before a transfer's last
// one answers the EPSV sent as its data connection closed: a 229, or a
// refusal of the command as such (500-504), which no transfer ends with.
// Some servers read commands during a transfer: pure-ftpd answers one
// with "500 Unknown command", then ends the transfer.
func outOfTurn(reply []byte) bool {
	code, err := strconv.Atoi(string(reply[:min(len(reply), 3)]))
	return err == nil && (code == 229 || code >= 500 && code <= 504)
}

// owedReply returns the reply to the EPSV sent as a data connection
// closed, once the library has had the transfer's reply. moved reports a
// listener the library has replaced since.
func (c *ctl) owedReply() (code int, msg string, moved bool, err error) {
	for {
		c.mu.Lock()
		late, gave, owed := c.late, c.gave, c.owed
		if late != nil {
			moved = c.moved
			c.owed, c.gave, c.late, c.forLib, c.moved = false, false, nil, false, false
			c.pending = append(c.pending, c.held...)
			c.held = nil
		}
		c.mu.Unlock()
		switch {
		case late != nil:
			code, msg, err = textproto.NewReader(bufio.NewReader(bytes.NewReader(late))).ReadResponse(0)
			return code, msg, moved, err
		case !owed:
			return 0, "", false, errors.New("EPSV reply taken by the library")
		case !gave:
			return 0, "", false, errors.New("transfer reply not read before the next EPSV's")
		}
		if err := c.sortReply(); err != nil {
			return 0, "", false, err
		}
	}
}

// owe writes an EPSV as a transfer's data connection closes, if the
// control connection goes along: its reply comes after the transfer's,
// without a round trip of its own. It reports whether it wrote one.
func (c *ctl) owe() bool {
	c.mu.Lock()
	if c.owed || c.epsv != nil || c.rest != nil || c.checkRest || len(c.pending) > 0 {
		c.mu.Unlock()
		return false
	}
	c.owed, c.gave = true, false
	c.mu.Unlock()
	if _, err := c.Conn.Write(epsvCommand); err != nil {
		// The library's next read fails the same way.
		return false
	}
	return true
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
	if ctl == nil {
		return nil
	}
	ctl.mu.Lock()
	owed := ctl.owed
	ctl.mu.Unlock()
	if owed {
		return c.prepareOwed(cn, ctl)
	}
	if has || c.noReady.Load() || c.cfg.DisableEPSV {
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
	c.connectAhead(cn, ctl, code, msg, port)
	return nil
}

// prepareOwed reads the reply to the EPSV sent as the last transfer's data
// connection closed, and connects to its port. Any other reply than 229
// means the server would not take that EPSV then (a server that reads
// commands during a transfer): the reply stream is still in step, EPSV
// waits for the transfer's reply from now on, and is sent again now.
func (c *Client) prepareOwed(cn *conn, ctl *ctl) error {
	cn.deadline(c.cfg.Timeout)
	code, msg, moved, err := ctl.owedReply()
	if err != nil {
		return err
	}
	port, perr := epsvPort(msg)
	if code != 229 || perr != nil {
		if !c.noEarlyEPSV.Swap(true) {
			c.log.Info("server refused an EPSV sent as a data connection closed; "+
				"EPSV waits for the transfer's reply from now on", "reply", fmt.Sprintf("%d %s", code, msg))
		}
		return c.prepare(cn)
	}
	cn.mu.Lock()
	has := cn.ready != nil
	cn.mu.Unlock()
	if moved || has {
		return nil // the server listens there for nothing; the next EPSV replaces it
	}
	c.connectAhead(cn, ctl, code, msg, port)
	return nil
}

// earlyEPSV writes the next transfer's EPSV as a transfer's data
// connection closes, so that its reply comes with the transfer's: the
// connection is ready again a round trip sooner. Servers read commands
// in order, after the transfer (RFC 959 allows no other).
func (c *Client) earlyEPSV(cn *conn) {
	if c.noReady.Load() || c.noEarlyEPSV.Load() || c.cfg.DisableEPSV {
		return
	}
	cn.mu.Lock()
	ctl, has := cn.ctl, cn.ready != nil
	cn.mu.Unlock()
	if ctl != nil && !has && ctl.owe() {
		c.stats.earlyEPSV.Add(1)
	}
}

// connectAhead connects to the port of a 229 reply, and keeps the reply
// for the library's next EPSV.
func (c *Client) connectAhead(cn *conn, ctl *ctl, code int, msg, port string) {
	dc, err := cn.dialData(port, false)
	if err != nil {
		// The server listens on that port for a while; the library's own
		// EPSV will replace the listener.
		c.log.Debug("data connection made ahead failed", "conn", cn.id, "err", err)
		return
	}
	cn.mu.Lock()
	cn.ready = &ready{port: port, dc: dc, made: time.Now()}
	cn.mu.Unlock()
	ctl.mu.Lock()
	ctl.epsv = []byte(fmt.Sprintf("%d %s\r\n", code, msg))
	ctl.mu.Unlock()
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

	began     atomic.Bool // the transfer began: the data connection was read
	halted    atomic.Bool // reads end at once from now on (halt, stream.go)
	closeOnce sync.Once
	closeErr  error
}

// Close closes the data connection once (the library and the stream may
// both close it). Closing a transfer's connection is the end of the
// transfer: the next EPSV goes out at once (item 2).
func (d *dataConn) Close() error {
	d.closeOnce.Do(func() {
		d.closeErr = d.Conn.Close()
		if d.began.Load() {
			d.owner.client.earlyEPSV(d.owner)
		}
	})
	return d.closeErr
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
	d.began.Store(true)
	_ = d.Conn.SetReadDeadline(time.Now().Add(d.timeout))
	if d.halted.Load() { // after the deadline is set: a halt meanwhile is not undone
		_ = d.Conn.SetReadDeadline(time.Unix(1, 0))
	}
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
