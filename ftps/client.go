package ftps

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/textproto"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mastfs/fs/stage"
)

var errClosed = errors.New("ftps: client closed")

// Client is a pool of logged-in control connections to one server. It is
// safe for concurrent use; operations beyond the pool's size wait their turn.
type Client struct {
	cfg    Config
	log    *slog.Logger
	tlsMax atomic.Uint32 // lowered to TLS 1.2 when the server refuses 1.3 session reuse
	curve  atomic.Uint32 // the key exchange the server chose last (a tls.CurveID); 0: none seen yet
	nextID atomic.Int64
	stats  counters
	done   chan struct{}

	mu       sync.Mutex // guards idle, open, busy, limit, shrunkAt, wake, closed, readying
	idle     []*conn
	open     int // connections that exist or are being dialed
	busy     int
	readying int // connections back in a round trip: making their next data connection, or reading a cut-short transfer's reply
	limit    int
	shrunkAt time.Time
	wake     chan struct{} // closed and replaced whenever a connection is released
	closed   bool

	fallbackOnce sync.Once
	noMLSD       atomic.Bool // the server's MLSD hides symlink targets: list with LIST
	unreachable  atomic.Bool // the last operation failed every retry: see noteReach
	noReady      atomic.Bool // the server does not take data connections made ahead (ready.go)
	noPipeline   atomic.Bool // the server refused a REST sent with its transfer command (wire.go)
	lateTLS      atomic.Bool // the server drops a data connection that speaks before the command (wire.go)
	noEarlyEPSV  atomic.Bool // the server answered an EPSV sent as a transfer ended out of turn (wire.go)
	noReuse      atomic.Bool // ErrNoSessionReuse was logged
	preparing    sync.WaitGroup

	onStep func(dialStep, *conn) // set by Check before the first dial; nil otherwise
}

// errStaleConn asks attempt for another connection: this one was dialed
// with settings since changed.
var errStaleConn = errors.New("connection uses settings since changed")

// New returns a client for cfg. It does not connect: the first operation does.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if cfg.Host == "" {
		return nil, errors.New("ftps: no host")
	}
	if err := checkPath(cfg.User); err != nil {
		return nil, fmt.Errorf("user: %w", err)
	}
	if err := checkPath(cfg.Password); err != nil {
		return nil, errors.New("password holds CR, LF or NUL")
	}
	c := &Client{
		cfg:   cfg,
		log:   cfg.Logger.With("host", cfg.Host),
		done:  make(chan struct{}),
		limit: cfg.MaxConns,
		wake:  make(chan struct{}),
	}
	max := cfg.MaxTLSVersion
	if max == 0 {
		max = tls.VersionTLS13
	}
	c.tlsMax.Store(uint32(max))
	if cfg.InsecureSkipVerify && cfg.TLS != Plaintext {
		c.log.Warn("TLS certificate verification is off: anyone on the path can read and change this session")
	}
	go c.tend()
	return c, nil
}

// Ping connects and logs in once, without retries, keeping the connection
// for the next operation. Its error tells a server that refuses us (an
// untrusted certificate, a wrong password: not IsTransient) from one that
// cannot be reached now.
func (c *Client) Ping(ctx context.Context) error {
	cn, _, err := c.get(ctx)
	if err != nil {
		return err
	}
	c.put(cn)
	return nil
}

// Host is the server's name as configured.
func (c *Client) Host() string { return c.cfg.Host }

// User is the login name.
func (c *Client) User() string { return c.cfg.User }

// closeWait bounds how long Close waits for connections still making their
// next data connection: against a server gone quiet that takes a whole
// timeout, and a process on its way out should not.
const closeWait = 2 * time.Second

// Close logs out every idle connection. Streams still open keep theirs until
// they are closed. Connections still making a data connection ahead are
// logged out when that ends; Close waits for them closeWait at most.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	idle := c.idle
	c.idle = nil
	c.open -= len(idle)
	c.broadcastLocked()
	c.mu.Unlock()
	close(c.done)
	for _, cn := range idle {
		cn.close()
	}
	prepared := make(chan struct{})
	go func() {
		c.preparing.Wait()
		close(prepared)
	}()
	select {
	case <-prepared:
	case <-time.After(closeWait):
		c.log.Debug("closed with connections still making a data connection ahead")
	}
	return nil
}

// attempt runs op on a pooled connection, retrying transient failures on a
// fresh connection with backoff. op returns keep=true when the connection is
// still checked out for the caller (an open stream).
func (c *Client) attempt(ctx context.Context, what string, op func(*conn) (keep bool, err error)) error {
	backoff := 200 * time.Millisecond
	retries := c.cfg.Retries
	if c.unreachable.Load() {
		retries = 0
	}
	for try := 0; ; try++ {
		cn, reused, err := c.get(ctx)
		if err == nil {
			var keep bool
			keep, err = op(cn)
			switch {
			case err == nil && !keep:
				c.put(cn)
			case err != nil && !IsTransient(err) && !brokenConn(err):
				c.put(cn) // a clean permanent reply (550): the connection is fine
			case err != nil:
				c.log.Debug("connection dropped", "conn", cn.id, "op", what, "err", err)
				c.discard(cn)
				if reused && brokenConn(err) && !errors.Is(err, errStaleConn) {
					c.drainIdle()
				}
			}
		}
		if errors.Is(err, errStaleConn) && try < c.cfg.Retries+c.cfg.MaxConns {
			continue // not a failure: take another connection at once
		}
		if err == nil || !IsTransient(err) || ctx.Err() != nil || try >= retries {
			c.noteReach(err, ctx.Err() == nil)
			if err != nil && try > 0 {
				err = fmt.Errorf("%w (after %d attempts)", err, try+1)
			}
			return err
		}
		c.stats.retries.Add(1)
		c.log.Info("retrying", "op", what, "attempt", try+2, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff *= 3
	}
}

// noteReach records whether the server answered the last operation. One
// that failed every retry on network errors marks it unreachable: until an
// operation succeeds again, each gets a single attempt, so a server gone
// away or gone silent costs each access one try (one timeout at most),
// not a whole round of retries.
func (c *Client) noteReach(err error, tried bool) {
	switch {
	case err == nil || !IsTransient(err) && !brokenConn(err): // a reply, even a refusal
		if c.unreachable.Swap(false) {
			c.log.Info("server answers again")
		}
	case tried && IsTransient(err) && !errors.Is(err, errStaleConn):
		if !c.unreachable.Swap(true) {
			c.log.Warn("server unreachable; one attempt per operation until it answers", "err", err)
		}
	}
}

// List returns the entries of a remote directory. MLSD is used where the
// server offers it and answers it, LIST otherwise; lines that do not parse
// are logged and left out. The answer settles what the server says of dir,
// so that callers need no FTP:
//
//   - entries, nil: dir is a directory and these are its entries.
//   - no entries, nil: dir is a directory (the server lets us enter it)
//     that shows nothing. It may be empty, or traverse-only ("x but not
//     r"): its names can still be reached by path, by listing them.
//   - ErrPermission: the server refuses dir, by a permission reply or by a
//     bare 550 for a directory its parent lists. Names below it may still
//     be reachable by path.
//   - ErrNotFound: there is no directory dir (a missing path, or a file),
//     or none that dir's parent shows. Telling this from a refusal may
//     cost a listing of the parent, only when the server does not say.
//   - ErrNoSessionReuse: no data connection can be made with this server.
//   - anything else: the server could not be asked (IsTransient says
//     whether trying later may help).
func (c *Client) List(ctx context.Context, dir string) ([]stage.Entry, error) {
	if err := checkPath(dir); err != nil {
		return nil, err
	}
	entries, err := c.list(ctx, dir)
	if errors.Is(err, ErrNotFound) && c.listedInParent(ctx, dir) {
		// Some servers (vsftpd) answer a directory we may not enter as
		// they answer a missing one: "550 Failed to change directory".
		return nil, fmt.Errorf("list %s: %w: its parent lists it, the server refuses it (%v)", dir, ErrPermission, err)
	}
	return entries, err
}

// list is List without telling a denied directory from a missing one.
func (c *Client) list(ctx context.Context, dir string) ([]stage.Entry, error) {
	var entries []stage.Entry
	err := c.attempt(ctx, "list "+dir, func(cn *conn) (bool, error) {
		mlsd := cn.sc.IsTimePreciseInList()
		if (mlsd && c.noMLSD.Load()) || c.oldTLS(cn) {
			return false, errStaleConn
		}
		var buf bytes.Buffer
		cn.mu.Lock()
		cn.capture = &buf
		cn.mu.Unlock()
		cn.deadline(c.cfg.Timeout)
		_, err := cn.sc.List(dir)
		cn.mu.Lock()
		cn.capture = nil
		cn.mu.Unlock()
		if err != nil && mlsd {
			return false, c.mlsdFailed(cn, dir, err)
		}
		if err != nil {
			return false, c.opError(cn, "list", dir, err)
		}
		var problems []error
		if mlsd {
			entries, problems = ParseMLSD(buf.Bytes())
		} else {
			entries, problems = ParseList(buf.Bytes(), time.Now())
		}
		for _, p := range problems[:min(len(problems), maxSkipsLogged)] {
			c.log.Warn("listing entry skipped", "dir", dir, "err", p)
		}
		if len(problems) > maxSkipsLogged {
			c.log.Warn("listing entries skipped; only the first were logged", "dir", dir,
				"skipped", len(problems), "logged", maxSkipsLogged)
		}
		if mlsd && hidesTargets(entries) {
			if !c.noMLSD.Swap(true) {
				c.log.Info("server's MLSD names no symlink targets; listing with LIST from now on")
			}
			return false, errStaleConn
		}
		if len(entries) == 0 || (len(entries) == 1 && entries[0].Name == path.Base(dir)) {
			// Some servers (vsftpd) answer a LIST of a missing or unreadable
			// directory with an empty listing, or with a line for the
			// directory itself: ask the directory.
			cn.deadline(c.cfg.Timeout)
			if err := cn.sc.ChangeDir(dir); err != nil {
				return false, c.opError(cn, "list", dir, err)
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// listedInParent reports whether dir's parent lists dir as a directory
// (or a link). It costs one listing, and only follows a refusal that
// does not say whether dir is missing or denied.
func (c *Client) listedInParent(ctx context.Context, dir string) bool {
	dir = path.Clean("/" + dir)
	if dir == "/" {
		return false
	}
	parent, name := path.Split(dir)
	entries, err := c.list(ctx, parent)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Name == name {
			return e.Type != stage.File
		}
	}
	return false
}

// mlsdFailed reads a failed MLSD. Some servers offer MLSD in FEAT and
// refuse it (ProFTPD's <Limit MLSD> answers 550 "Unable to handle
// command"): a refusal is not a missing directory. A command refused as
// such, or a 5xx for a directory the server lets us enter, turns MLSD off
// for this server, and the listing is tried again at once with LIST.
func (c *Client) mlsdFailed(cn *conn, dir string, err error) error {
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code < 500 {
		return c.opError(cn, "list", dir, err)
	}
	if te.Code != 500 && te.Code != 502 && te.Code != 504 {
		if errors.Is(classify(err), ErrPermission) {
			// "550 /dir: Permission denied" refuses the directory, not
			// the command: a traverse-only directory answers MLSD so on
			// servers whose MLSD works everywhere else.
			return c.opError(cn, "list", dir, err)
		}
		cn.deadline(c.cfg.Timeout)
		if cwdErr := cn.sc.ChangeDir(dir); cwdErr != nil {
			return c.opError(cn, "list", dir, cwdErr)
		}
	}
	if !c.noMLSD.Swap(true) {
		c.log.Info("server offers MLSD but refuses it; listing with LIST from now on",
			"reply", fmt.Sprintf("%d %s", te.Code, te.Msg))
	}
	return fmt.Errorf("list %s: %w (%w)", dir, errStaleConn, err)
}

// maxSkipsLogged bounds the lines one listing logs about entries it
// skipped, so a broken server cannot fill the log.
const maxSkipsLogged = 20

// oldTLS reports whether cn was dialed allowing a TLS version the server
// has since been found to refuse on data connections.
func (c *Client) oldTLS(cn *conn) bool {
	return cn.tls != nil && cn.tls.MaxVersion > uint16(c.tlsMax.Load())
}

func hidesTargets(entries []stage.Entry) bool {
	for _, e := range entries {
		if e.Type == stage.Link && e.Target == "" {
			return true
		}
	}
	return false
}

// opError turns an FTP library error into one of ours. A refused data
// connection (425, 522) is read in the light of what this connection did:
// a connection made ahead is given up first, then TLS 1.3 (when that is
// what the control connection negotiated), and under TLS 1.2 with no
// session to resume it is ErrNoSessionReuse, which no retry can change.
func (c *Client) opError(cn *conn, op, p string, err error) error {
	if errors.Is(err, errStaleConn) {
		return fmt.Errorf("%s %s: %w", op, p, err)
	}
	var te *textproto.Error
	if !errors.As(err, &te) || (te.Code != 425 && te.Code != 522) || !cn.hasData() {
		return fmt.Errorf("%s %s: %w", op, p, classify(err))
	}
	reply := fmt.Sprintf("%d %s", te.Code, te.Msg)
	cn.mu.Lock()
	tookReady := cn.tookReady
	cn.mu.Unlock()
	switch {
	case tookReady:
		// The server did not take the data connection made ahead: make
		// none from now on, and try again at once.
		c.noteNoReady(reply)
		return fmt.Errorf("%s %s: %w (%w)", op, p, errStaleConn, err)
	case cn.negotiated() == tls.VersionTLS13:
		c.fallbackOnce.Do(func() {
			c.tlsMax.Store(tls.VersionTLS12)
			c.stats.tlsFallbacks.Add(1)
			c.log.Warn("server refused a data connection under TLS 1.3; using TLS 1.2 with it from now on",
				"reply", reply)
		})
		// This connection negotiated 1.3: try again on one that will not.
		return fmt.Errorf("%s %s: %w (%w)", op, p, errStaleConn, err)
	case cn.cannotResume():
		if !c.noReuse.Swap(true) {
			c.log.Error(ErrNoSessionReuse.Error(), "reply", reply)
		}
		return fmt.Errorf("%s %s: %w (%w)", op, p, ErrNoSessionReuse, err)
	}
	return fmt.Errorf("%s %s: %w", op, p, classify(err))
}

// cannotResume reports whether cn's data connections cannot resume its
// TLS session: under TLS 1.2 the server handed out no session ticket.
func (cn *conn) cannotResume() bool {
	return cn.negotiated() == tls.VersionTLS12 && cn.tickets != nil && !cn.tickets.issued.Load()
}

// hasData reports whether the operation in progress opened a data
// connection: a 425 before that is about the server's side alone.
func (cn *conn) hasData() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.data != nil
}

// classify maps an FTP reply to our error kinds. The reply stays in the
// chain, so callers can still tell a clean refusal from a broken connection.
func classify(err error) error {
	var te *textproto.Error
	if !errors.As(err, &te) {
		return err
	}
	msg := strings.ToLower(te.Msg)
	var kind error
	switch {
	case te.Code == 550 || te.Code == 553 || te.Code == 450:
		if strings.Contains(msg, "permission") || strings.Contains(msg, "denied") ||
			strings.Contains(msg, "access") || strings.Contains(msg, "not allowed") {
			kind = ErrPermission
		} else if te.Code != 450 || strings.Contains(msg, "no such file") || strings.Contains(msg, "not found") {
			// 450 alone is transient by RFC 959; ProFTPD answers a LIST of
			// a missing path with 450 "No such file or directory".
			kind = ErrNotFound
		}
	case te.Code == 530:
		kind = ErrLogin
	case te.Code >= 500:
		kind = errPermanent
	}
	if kind == nil {
		return err
	}
	return &replyError{reply: te, kind: kind}
}

// errPermanent marks a 5xx reply that retrying will not change.
var errPermanent = errors.New("permanent")

// replyError is a server reply that says what kind of failure it is.
type replyError struct {
	reply *textproto.Error
	kind  error
}

func (e *replyError) Error() string {
	if e.kind == errPermanent {
		return e.reply.Error()
	}
	return e.reply.Error() + ": " + e.kind.Error()
}
func (e *replyError) Unwrap() []error { return []error{e.kind, e.reply} }

// brokenConn reports whether err leaves the connection unusable: anything
// but a clean reply from the server.
func brokenConn(err error) bool {
	var te *textproto.Error
	return !errors.As(err, &te)
}

// Stat returns the entry for one path, from its parent directory's listing.
func (c *Client) Stat(ctx context.Context, p string) (stage.Entry, error) {
	dir, name := path.Split(path.Clean("/" + p))
	entries, err := c.List(ctx, dir)
	if err != nil {
		return stage.Entry{}, err
	}
	for _, e := range entries {
		if e.Name == name {
			return e, nil
		}
	}
	return stage.Entry{}, fmt.Errorf("stat %s: %w", p, ErrNotFound)
}
