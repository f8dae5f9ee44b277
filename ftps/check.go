package ftps

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"

	"mastfs/fs/stage"
)

// Check walks every step of talking to the server — TCP, TLS and its
// certificate, login, PROT P, a passive data connection, a listing and a
// small ranged read — printing one line per step to w, with the likely cause
// and the fix where a step fails. It also reports what the server offers.
func Check(ctx context.Context, cfg Config, dir string, w io.Writer) error {
	cfg = cfg.withDefaults()
	ck := &checker{w: w, cfg: cfg}
	if dir == "" {
		dir = "/"
	}

	// TCP.
	start := time.Now()
	d := net.Dialer{Timeout: cfg.Timeout}
	raw, err := d.DialContext(ctx, "tcp", cfg.Addr())
	if err != nil {
		return ck.fail("TCP connect to "+cfg.Addr(), err,
			"check the host name and port; a firewall may block port "+fmt.Sprint(cfg.Port)+
				"; MAST uses 21 (explicit TLS) and 990 (implicit, --tls implicit)")
	}
	rtt := time.Since(start)
	ck.ok("TCP connect to %s (%s): %s", cfg.Addr(), raw.RemoteAddr(), rtt.Round(time.Millisecond))
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(cfg.Timeout))

	// TLS and certificate.
	var tp *textproto.Conn
	tcfg := &tls.Config{ServerName: cfg.Host, RootCAs: cfg.RootCAs, InsecureSkipVerify: cfg.InsecureSkipVerify,
		MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	var sock net.Conn = raw
	if cfg.TLS == Explicit {
		tp = textproto.NewConn(raw)
		code, msg, err := tp.ReadResponse(220)
		if err != nil {
			return ck.fail("greeting", err, "the server did not greet as an FTP server; is this the right port?")
		}
		ck.ok("greeting: %d %s", code, firstLine(msg))
		if _, _, err := cmd(tp, 234, "AUTH TLS"); err != nil {
			return ck.fail("AUTH TLS", err, "the server does not offer explicit TLS here; try --tls implicit (port 990)")
		}
	}
	if cfg.TLS != Plaintext {
		tc := tls.Client(raw, tcfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			hint := "the server may not speak TLS on this port; try the other --tls mode"
			var ve *tls.CertificateVerificationError
			var ue x509.UnknownAuthorityError
			if errors.As(err, &ve) || errors.As(err, &ue) {
				hint = "the certificate is not trusted: give the issuing CA with --ca-file, or for a local test server --insecure-skip-verify"
			}
			return ck.fail("TLS handshake", err, hint)
		}
		st := tc.ConnectionState()
		ck.ok("TLS handshake: %s, %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
		if len(st.PeerCertificates) > 0 {
			c := st.PeerCertificates[0]
			verified := "verified"
			if cfg.InsecureSkipVerify {
				verified = "NOT verified (--insecure-skip-verify)"
			}
			ck.ok("certificate: %s, issued by %s, valid until %s, %s", c.Subject.CommonName, c.Issuer.CommonName,
				c.NotAfter.Format("2006-01-02"), verified)
		}
		sock = tc
		tp = textproto.NewConn(tc)
		if cfg.TLS == Implicit {
			code, msg, err := tp.ReadResponse(220)
			if err != nil {
				return ck.fail("greeting", err, "no FTP greeting after the TLS handshake")
			}
			ck.ok("greeting: %d %s", code, firstLine(msg))
		}
	} else {
		tp = textproto.NewConn(raw)
		if _, _, err := tp.ReadResponse(220); err != nil {
			return ck.fail("greeting", err, "no FTP greeting")
		}
		ck.warn("no TLS (--insecure-plaintext): the password crosses the network in clear")
	}

	// Login.
	code, _, err := cmd(tp, 0, "USER %s", cfg.User)
	if err == nil && code == 331 {
		code, _, err = cmd(tp, 230, "PASS %s", cfg.Password)
	}
	if err != nil || (code != 230 && code != 331) {
		hint := "check --user; anonymous users give an email as password (--email)"
		if !strings.EqualFold(cfg.User, "anonymous") {
			hint = "check the email you registered with STScI and its password; anonymous data needs no account"
		}
		return ck.fail("login as "+cfg.User, err, hint)
	}
	ck.ok("login as %s", cfg.User)

	// Features.
	_, feat, _ := cmd(tp, 211, "FEAT")
	feats := strings.ToUpper(feat)
	has := func(f string) string {
		if strings.Contains(feats, "\n "+f) || strings.Contains(feats, "\n"+f) {
			return "yes"
		}
		return "no"
	}
	ck.ok("server offers: EPSV %s, MLSD %s, REST STREAM %s, UTF8 %s", has("EPSV"), has("MLST"), has("REST STREAM"), has("UTF8"))

	if cfg.TLS != Plaintext {
		if _, _, err := cmd(tp, 200, "PBSZ 0"); err == nil {
			_, _, err = cmd(tp, 200, "PROT P")
		}
		if err != nil {
			return ck.fail("PROT P (encrypted data connections)", err, "the server refuses protected data connections")
		}
		ck.ok("PROT P: data connections are encrypted")
		// Does the server demand TLS session reuse on data connections?
		ck.probeReuse(ctx, tp, sock, tcfg)
	}
	_, _, _ = cmd(tp, 221, "QUIT")

	// The real client: pool, passive data connection, listing, ranged read.
	c, err := New(cfg)
	if err != nil {
		return ck.fail("client", err, "")
	}
	defer c.Close()
	entries, err := c.List(ctx, dir)
	if err != nil {
		hint := "the directory may not exist or you may not list it; anonymous users may not list the server root: give your stage with --remote-dir /anonymous/anonymousNNNNN"
		if IsTransient(err) {
			hint = "passive data connections may be blocked by a firewall between you and the server"
		}
		return ck.fail("list "+dir, err, hint)
	}
	ck.ok("list %s over a passive data connection: %d entries", dir, len(entries))
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
		ck.ok("ranged read: %d bytes of %s from offset %d in %s", n, e.Name, e.Size/2, time.Since(t0).Round(time.Millisecond))
		break
	}
	st := c.Stats()
	if st.TLSFallbacks > 0 {
		ck.warn("the server refused TLS 1.3 session reuse; mastfs uses TLS 1.2 with it")
	}
	ck.ok("round trip about %s; every FTP command costs at least that", rtt.Round(time.Millisecond))
	fmt.Fprintln(w, "all checks passed")
	return nil
}

// probeReuse opens one data connection without resuming the control
// connection's TLS session: servers that demand reuse refuse it.
func (ck *checker) probeReuse(ctx context.Context, tp *textproto.Conn, ctl net.Conn, tcfg *tls.Config) {
	_, msg, err := cmd(tp, 229, "EPSV")
	mode := "EPSV"
	var port int
	if err == nil {
		_, err = fmt.Sscanf(msg[strings.Index(msg, "(|||")+4:], "%d", &port)
	}
	if err != nil {
		mode = "PASV"
		var h [6]int
		_, msg, err = cmd(tp, 227, "PASV")
		if err == nil {
			i := strings.IndexByte(msg, '(')
			if i < 0 {
				err = errors.New("unparseable PASV reply")
			} else {
				_, err = fmt.Sscanf(msg[i+1:], "%d,%d,%d,%d,%d,%d", &h[0], &h[1], &h[2], &h[3], &h[4], &h[5])
			}
			port = h[4]<<8 | h[5]
			announced := fmt.Sprintf("%d.%d.%d.%d", h[0], h[1], h[2], h[3])
			if peer, _, _ := net.SplitHostPort(ctl.RemoteAddr().String()); err == nil && announced != peer {
				ck.warn("PASV announces %s, not the server's address %s (NAT): mastfs connects to %s", announced, peer, peer)
			}
		}
		if err != nil {
			ck.warn("passive mode: %v", err)
			return
		}
	}
	ck.ok("passive mode: %s", mode)
	peer, _, _ := net.SplitHostPort(ctl.RemoteAddr().String())
	d := net.Dialer{Timeout: ck.cfg.Timeout}
	raw, err := d.DialContext(ctx, "tcp", net.JoinHostPort(peer, fmt.Sprint(port)))
	if err != nil {
		ck.warn("data connection to port %d: %v (a firewall may block passive ports)", port, err)
		return
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(ck.cfg.Timeout))
	fresh := tcfg.Clone()
	fresh.ClientSessionCache = nil
	dc := tls.Client(raw, fresh)
	code, _, err := cmd(tp, 0, "NLST /")
	if err == nil && (code == 150 || code == 125) {
		_, err = io.Copy(io.Discard, dc)
		dc.Close()
		code, _, err = tp.ReadResponse(0)
	}
	switch {
	case code == 522 || code == 425:
		ck.ok("server demands TLS session reuse on data connections (mastfs resumes sessions)")
	case err == nil:
		ck.ok("server accepts data connections without TLS session reuse")
	default:
		ck.ok("data connection without session reuse: %v", err)
	}
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

// cmd sends one command and reads its reply; expect 0 accepts any code.
func cmd(tp *textproto.Conn, expect int, format string, args ...any) (int, string, error) {
	if err := tp.PrintfLine(format, args...); err != nil {
		return 0, "", err
	}
	code, msg, err := tp.ReadResponse(expect)
	if expect == 0 {
		err = nil
		if code >= 400 {
			err = &textproto.Error{Code: code, Msg: msg}
		}
	}
	return code, msg, err
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
