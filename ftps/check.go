package ftps

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"mastfs/fs/stage"
)

// Check walks the path a mount takes with the server, on the client's own
// code: connect, TLS and its certificate, login, the data connection made
// ahead, a listing and a small ranged read. It prints one line per step,
// with its time in milliseconds, and the likely cause and fix where a step
// fails; then what the server offers, and which of the client's practices
// it had to turn off for this server.
func Check(ctx context.Context, cfg Config, dir string, w io.Writer) error {
	cfg = cfg.withDefaults()
	cfg.MaxConns = 1 // one connection walks every step
	cfg.Retries = 2  // room for the practices a server makes the client give up
	if dir == "" {
		dir = "/"
	}
	ck := &checker{w: w, cfg: cfg}
	c, err := New(cfg)
	if err != nil {
		return ck.fail("client", err, "")
	}
	defer c.Close()

	// Connect and log in, step by step.
	var rtt time.Duration
	reached := dialStep(-1)
	t0 := time.Now()
	c.onStep = func(s dialStep, cn *conn) {
		if s <= reached {
			return // a later connection, after one was given up
		}
		reached = s
		took := time.Since(t0)
		t0 = time.Now()
		switch s {
		case stepTCP:
			rtt = took
			ck.ok("TCP connect to %s (%s): %s", cfg.Addr(), cn.peer, ms(took))
		case stepTLS:
			ck.tls(cn.state, took)
		case stepLogin:
			prot := ""
			if cfg.TLS != Plaintext {
				prot = ", PBSZ 0, PROT P: data connections are encrypted"
			}
			ck.ok("login as %s%s: %s", cfg.User, prot, ms(took))
		}
	}
	cn, _, err := c.get(ctx)
	if err != nil {
		return ck.failDial(reached, err)
	}
	if cfg.TLS == Plaintext {
		ck.warn("no TLS (--insecure-plaintext): the password crosses the network in clear")
	}

	// What the server offers, and a data connection made ahead.
	feats := ck.features(c, cn)
	t0 = time.Now()
	if err := c.prepare(cn); err != nil {
		c.discard(cn)
		return ck.fail("EPSV", err, "the server dropped the control connection")
	}
	cn.mu.Lock()
	r := cn.ready
	cn.mu.Unlock()
	if r != nil {
		ck.ok("data connection made ahead (EPSV, port %s): %s", r.port, ms(time.Since(t0)))
	}
	if cfg.TLS != Plaintext && !ck.probeReuse(cn) {
		c.discard(cn)
	} else {
		c.release(cn, true)
	}

	// The listing and a ranged read, as a mount makes them.
	t0 = time.Now()
	entries, err := c.List(ctx, dir)
	if err != nil {
		return ck.fail("list "+dir, err, listHint(err))
	}
	how := "LIST"
	if strings.Contains(feats, "\nMLST") && !c.noMLSD.Load() {
		how = "MLSD"
	}
	ck.ok("list %s with %s: %d entries: %s", dir, how, len(entries), ms(time.Since(t0)))
	if err := ck.rangedRead(ctx, c, dir, entries); err != nil {
		return err
	}

	ck.turnedOff(c, strings.Contains(feats, "\nMLST"))
	ck.ok("round trip about %s; every FTP command costs at least that", ms(rtt))
	fmt.Fprintln(w, "all checks passed")
	return nil
}

// ms prints a duration in milliseconds: a round trip on a fast link is
// well under one.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

type checker struct {
	w   io.Writer
	cfg Config
}

func (ck *checker) ok(format string, args ...any) {
	fmt.Fprintf(ck.w, "ok    "+format+"\n", args...)
}

func (ck *checker) warn(format string, args ...any) {
	fmt.Fprintf(ck.w, "warn  "+format+"\n", args...)
}

func (ck *checker) fail(step string, err error, hint string) error {
	fmt.Fprintf(ck.w, "FAIL  %s: %v\n", step, err)
	if hint != "" {
		fmt.Fprintf(ck.w, "      try: %s\n", hint)
	}
	return fmt.Errorf("%s: %w", step, err)
}

// failDial reports a failed connection at the step after the last reached.
func (ck *checker) failDial(reached dialStep, err error) error {
	cfg := ck.cfg
	switch {
	case reached < stepTCP:
		return ck.fail("TCP connect to "+cfg.Addr(), err,
			"check the host name and port; a firewall may block port "+fmt.Sprint(cfg.Port)+
				"; MAST uses 21 (explicit TLS) and 990 (implicit, --tls implicit)")
	case reached < stepTLS && cfg.TLS != Plaintext:
		hint := "the server may not speak TLS on this port; try the other --tls mode"
		var ve *tls.CertificateVerificationError
		var ue x509.UnknownAuthorityError
		if errors.As(err, &ve) || errors.As(err, &ue) {
			hint = "the certificate is not trusted: give the issuing CA with --ca-file, or for a local test server --insecure-skip-verify"
		}
		return ck.fail("TLS handshake", err, hint)
	}
	hint := "check --user; anonymous users give an email as password (--email)"
	if !strings.EqualFold(cfg.User, "anonymous") {
		hint = "check the email you registered with STScI and its password; anonymous data needs no account"
	}
	return ck.fail("login as "+cfg.User, err, hint)
}

// tls reports the control connection's handshake and certificate.
func (ck *checker) tls(st tls.ConnectionState, took time.Duration) {
	ck.ok("TLS handshake: %s, %s: %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), ms(took))
	if len(st.PeerCertificates) == 0 {
		return
	}
	cert := st.PeerCertificates[0]
	verified := "verified"
	if ck.cfg.InsecureSkipVerify {
		verified = "NOT verified (--insecure-skip-verify)"
	}
	ck.ok("certificate: %s, issued by %s, valid until %s, %s", cert.Subject.CommonName, cert.Issuer.CommonName,
		cert.NotAfter.Format("2006-01-02"), verified)
}

// features asks the server what it offers (FEAT) and reports it. It
// returns the reply, upper-cased, each feature on a line of its own.
func (ck *checker) features(c *Client, cn *conn) string {
	cn.deadline(c.cfg.Timeout)
	_, msg, err := cn.ctl.exchange("FEAT")
	if err != nil {
		ck.warn("FEAT: %v", err)
		return ""
	}
	feats := "\n" + strings.ToUpper(strings.ReplaceAll(msg, "\n ", "\n"))
	has := func(f string) string {
		if strings.Contains(feats, "\n"+f) {
			return "yes"
		}
		return "no"
	}
	ck.ok("server offers: EPSV %s, MLSD %s, REST STREAM %s, UTF8 %s", has("EPSV"), has("MLST"),
		has("REST STREAM"), has("UTF8"))
	if cn.negotiated() == tls.VersionTLS12 {
		if cn.tickets.issued.Load() {
			ck.ok("TLS 1.2 session tickets: yes (data connections resume the control connection's session)")
		} else {
			ck.warn("TLS 1.2 session tickets: no (this client cannot resume a TLS 1.2 session without them)")
		}
	}
	return feats
}

// probeReuse asks for one data connection that does not resume the
// control connection's TLS session: a server that demands reuse refuses
// it. The connection's EPSV made ahead is given up for it. It reports
// whether the control connection is still in step.
func (ck *checker) probeReuse(cn *conn) bool {
	cn.dropReady()
	cn.deadline(ck.cfg.Timeout)
	code, msg, err := cn.ctl.exchange("EPSV")
	port, perr := epsvPort(msg)
	if err != nil || code != 229 || perr != nil {
		ck.warn("EPSV: %d %s %v", code, msg, err)
		return err == nil || !brokenConn(err)
	}
	cn.mu.Lock()
	peer := cn.peer
	cn.mu.Unlock()
	raw, err := net.DialTimeout("tcp", net.JoinHostPort(peer, port), ck.cfg.Timeout)
	if err != nil {
		ck.warn("data connection to port %s: %v (a firewall may block passive ports)", port, err)
		return true // the server still waits for the NLST that would use it: EPSV again replaces it
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(ck.cfg.Timeout))
	fresh := cn.tls.Clone()
	fresh.ClientSessionCache = nil
	dc := tls.Client(raw, fresh)
	code, _, err = cn.ctl.exchange("NLST /")
	if err == nil && (code == 150 || code == 125) {
		_, _ = io.Copy(io.Discard, dc)
		dc.Close()
		code, _, err = cn.ctl.reply()
	}
	switch {
	case code == 522 || code == 425:
		ck.ok("server demands TLS session reuse on data connections")
	case err == nil:
		ck.ok("server accepts data connections without TLS session reuse")
	default:
		ck.warn("data connection without session reuse: %v", err)
	}
	return err == nil || !brokenConn(err)
}

// listHint is the likely cause of a failed listing.
func listHint(err error) string {
	switch {
	case errors.Is(err, ErrNoSessionReuse):
		return "" // the error says it all
	case IsTransient(err):
		return "passive data connections may be blocked by a firewall between you and the server"
	}
	return "the directory may not exist or you may not list it; anonymous users may not list the server root: " +
		"give your stage with --remote-dir /anonymous/anonymousNNNNN"
}

// rangedRead reads 1 KiB from the middle of the first non-empty file.
func (ck *checker) rangedRead(ctx context.Context, c *Client, dir string, entries []stage.Entry) error {
	for _, e := range entries {
		if e.Type != stage.File || e.Size == 0 {
			continue
		}
		p := strings.TrimSuffix(dir, "/") + "/" + e.Name
		t0 := time.Now()
		rc, err := c.ReadAt(ctx, p, e.Size/2)
		if err != nil {
			return ck.fail("ranged read of "+p, err, "the server may not support REST (resumed transfers)")
		}
		buf := make([]byte, 1024)
		n, err := io.ReadFull(rc, buf)
		_ = rc.Close()
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return ck.fail("ranged read of "+p, err, "")
		}
		ck.ok("ranged read: %d bytes of %s from offset %d: %s", n, e.Name, e.Size/2, ms(time.Since(t0)))
		return nil
	}
	ck.warn("no file in %s to read from", dir)
	return nil
}

// turnedOff reports the client's practices this server made it give up.
func (ck *checker) turnedOff(c *Client, offersMLSD bool) {
	var off []string
	if c.noReady.Load() {
		off = append(off, "data connections made ahead")
	}
	if c.lateTLS.Load() {
		off = append(off, "TLS handshakes on data connections before the transfer command")
	}
	if c.noPipeline.Load() {
		off = append(off, "REST sent together with RETR")
	}
	if offersMLSD && c.noMLSD.Load() {
		off = append(off, "MLSD (listing with LIST)")
	}
	if c.stats.tlsFallbacks.Load() > 0 {
		off = append(off, "TLS 1.3 (using TLS 1.2)")
	}
	if len(off) == 0 {
		ck.ok("the server takes every practice the mount uses")
		return
	}
	ck.warn("turned off for this server: %s", strings.Join(off, "; "))
}
