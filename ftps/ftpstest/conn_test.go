package ftpstest

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ctrl is a bare FTPS control connection, independent of the project's
// client, so the harness can be checked on its own: enough of RFC 959,
// 2228 and 4217 to log in, list and read.
type ctrl struct {
	t    *testing.T
	s    *Server
	conf *tls.Config
	conn net.Conn
	tp   *textproto.Conn
	tls  *tls.Conn
}

func dialCtrl(t *testing.T, s *Server, maxTLS uint16) *ctrl {
	t.Helper()
	conf := s.TLSConfig()
	conf.MaxVersion = maxTLS
	raw, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", s, err)
	}
	c := &ctrl{t: t, s: s, conf: conf, conn: raw}
	t.Cleanup(func() { c.conn.Close() })
	_ = raw.SetDeadline(time.Now().Add(60 * time.Second))
	if s.Implicit {
		c.startTLS()
	} else {
		c.tp = textproto.NewConn(raw)
	}
	c.expect(220)
	if !s.Implicit {
		c.cmd(234, "AUTH TLS")
		c.startTLS()
	}
	return c
}

func (c *ctrl) startTLS() {
	c.t.Helper()
	tc := tls.Client(c.conn, c.conf)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake with %s: %v", c.s, err)
	}
	c.conn, c.tls = tc, tc
	c.tp = textproto.NewConn(tc)
}

// reply reads one (possibly multi-line) reply.
func (c *ctrl) reply() (int, string) {
	c.t.Helper()
	code, msg, err := c.tp.ReadResponse(0)
	if err != nil && code == 0 {
		c.t.Fatalf("%s: read reply: %v", c.s, err)
	}
	return code, msg
}

func (c *ctrl) expect(want int) string {
	c.t.Helper()
	code, msg := c.reply()
	if code != want {
		c.t.Fatalf("%s: reply %d %q, want %d", c.s, code, msg, want)
	}
	return msg
}

// send writes a command and returns its reply; PASS is never logged.
func (c *ctrl) send(format string, args ...any) (int, string) {
	c.t.Helper()
	if err := c.tp.PrintfLine(format, args...); err != nil {
		c.t.Fatalf("%s: send: %v", c.s, err)
	}
	return c.reply()
}

func (c *ctrl) cmd(want int, format string, args ...any) string {
	c.t.Helper()
	code, msg := c.send(format, args...)
	if code != want {
		verb, _, _ := strings.Cut(format, " ")
		c.t.Fatalf("%s: %s: reply %d %q, want %d", c.s, verb, code, msg, want)
	}
	return msg
}

func (c *ctrl) login(user bool) {
	c.t.Helper()
	name, pass := c.s.AnonUser, c.s.AnonPassword
	if user {
		name, pass = c.s.User, c.s.Password
	}
	switch code, msg := c.send("USER %s", name); code {
	case 230: // pure-ftpd takes anonymous users without a password
	case 331:
		c.cmd(230, "PASS %s", pass)
	default:
		c.t.Fatalf("%s: USER: %d %s", c.s, code, msg)
	}
	c.cmd(200, "PBSZ 0")
	c.cmd(200, "PROT P")
	c.cmd(200, "TYPE I")
}

// pasv asks for a passive data address; with epsv it uses EPSV and the
// control connection's host, as RFC 2428 says.
func (c *ctrl) pasv(epsv bool) (announced string, port int) {
	c.t.Helper()
	if epsv {
		msg := c.cmd(229, "EPSV")
		i, j := strings.Index(msg, "(|||"), strings.LastIndex(msg, "|)")
		if i < 0 || j < i {
			c.t.Fatalf("%s: EPSV reply %q", c.s, msg)
		}
		port, _ = strconv.Atoi(msg[i+4 : j])
		return c.s.Host, port
	}
	msg := c.cmd(227, "PASV")
	i, j := strings.Index(msg, "("), strings.Index(msg, ")")
	if i < 0 || j < i {
		c.t.Fatalf("%s: PASV reply %q", c.s, msg)
	}
	f := strings.Split(msg[i+1:j], ",")
	if len(f) != 6 {
		c.t.Fatalf("%s: PASV reply %q", c.s, msg)
	}
	hi, _ := strconv.Atoi(f[4])
	lo, _ := strconv.Atoi(f[5])
	return strings.Join(f[:4], "."), hi<<8 | lo
}

// data runs a transfer command over a TLS data connection to the control
// connection's host and returns the final reply and the bytes read. The
// data connection resumes the control connection's session through the
// shared cache, as vsftpd's require_ssl_reuse demands.
func (c *ctrl) data(command string) (code int, msg string, body []byte, state tls.ConnectionState) {
	c.t.Helper()
	_, port := c.pasv(true)
	return c.dataPort(port, command)
}

// dataPort runs a transfer command over a data connection to port, made
// before the command and silent until it, as curl makes them. A data
// connection the server breaks off is no failure here: the final reply
// says what happened, and the caller judges it.
func (c *ctrl) dataPort(port int, command string) (code int, msg string, body []byte, state tls.ConnectionState) {
	c.t.Helper()
	raw, err := net.DialTimeout("tcp", net.JoinHostPort(c.s.Host, strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		c.t.Fatalf("%s: data dial: %v", c.s, err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(60 * time.Second))
	if code, msg = c.send("%s", command); code != 150 && code != 125 {
		return code, msg, nil, state
	}
	dc := tls.Client(raw, c.conf)
	if err := dc.Handshake(); err != nil {
		c.t.Logf("%s: data TLS: %v", c.s, err)
	} else {
		state = dc.ConnectionState()
		if body, err = io.ReadAll(dc); err != nil {
			c.t.Logf("%s: read data: %v", c.s, err)
		}
	}
	dc.Close()
	code, msg = c.reply()
	return code, msg, body, state
}

// feat returns the FEAT lines, trimmed.
func (c *ctrl) feat() []string {
	c.t.Helper()
	msg := c.cmd(211, "FEAT")
	var out []string
	for _, l := range strings.Split(msg, "\n")[1:] {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "End") {
			out = append(out, strings.ToUpper(l))
		}
	}
	return out
}

func (c *ctrl) quit() {
	_, _ = c.send("QUIT")
	c.conn.Close()
}

// readLine reads one raw line, for servers that answer before TLS.
func readLine(conn net.Conn) (string, error) {
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

func tlsName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "TLS 1.2"
	case tls.VersionTLS13:
		return "TLS 1.3"
	}
	return fmt.Sprintf("TLS %#x", v)
}
