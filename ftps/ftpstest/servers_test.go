package ftpstest

import (
	"crypto/tls"
	"net"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mastfs/ftps/stagegen"
)

// TestProtocol records what each server offers and checks what the
// project relies on: TLS 1.3 and 1.2 from a Go client, many data
// connections in a row on one control connection (TLS 1.3 tickets are
// single-use), EPSV, LIST dates, and the reply for an unreadable directory.
func TestProtocol(t *testing.T) {
	for _, s := range Matrix(t) {
		t.Run(s.Name, func(t *testing.T) {
			for _, maxTLS := range []uint16{0, tls.VersionTLS12} {
				c := dialCtrl(t, s, maxTLS)
				c.login(false)
				ver := c.tls.ConnectionState().Version
				if maxTLS == 0 && ver != tls.VersionTLS13 {
					t.Errorf("negotiated %s, want TLS 1.3", tlsName(ver))
				}
				for i := range 12 {
					code, msg, body, st := c.data("LIST /" + stagegen.AnonDir)
					if code != 226 {
						t.Fatalf("%s LIST #%d: %d %s", tlsName(ver), i, code, msg)
					}
					if s.Impl == "vsftpd" && !st.DidResume {
						t.Errorf("%s LIST #%d: data connection did not resume the session", tlsName(ver), i)
					}
					if i == 0 {
						checkListDates(t, s, string(body))
						t.Logf("%s: control %s, data %s resumed=%v", s.Name, tlsName(ver), tlsName(st.Version), st.DidResume)
					}
				}
				if maxTLS == 0 {
					feat := c.feat()
					t.Logf("%s FEAT: %s", s.Name, strings.Join(feat, ", "))
					if slices.ContainsFunc(feat, func(f string) bool { return strings.HasPrefix(f, "MLSD") }) {
						code, msg, body, _ := c.data("MLSD /" + stagegen.AnonDir)
						if code != 226 || !strings.Contains(string(body), "; "+path.Base(stagegen.HSTFile)) {
							t.Errorf("MLSD: %d %s\n%s", code, msg, body)
						}
					}
					code, msg, body, _ := c.data("LIST /" + stagegen.PrivateDir)
					t.Logf("%s: LIST of an unreadable directory: %d %q, %q", s.Name, code, msg, body)
					if code, msg := c.send("CWD /%s", stagegen.PrivateDir); code != 550 {
						t.Errorf("CWD /%s: %d %s, want 550", stagegen.PrivateDir, code, msg)
					}
					if code, msg := c.send("SIZE /%s", stagegen.SecretFile); code != 550 {
						t.Errorf("SIZE /%s: %d %s, want 550", stagegen.SecretFile, code, msg)
					}
				}
				c.quit()
			}
		})
	}
}

var clockRE = regexp.MustCompile(` [0-2][0-9]:[0-5][0-9] `)

// checkListDates: more than six months old shows a year, recent a clock.
func checkListDates(t *testing.T, s *Server, list string) {
	t.Helper()
	for _, line := range strings.Split(list, "\n") {
		switch {
		case strings.HasSuffix(strings.TrimSpace(line), path.Base(stagegen.HSTFile)):
			if !strings.Contains(line, "Mar 14  2019") {
				t.Errorf("%s: old file listed as %q, want Mar 14  2019", s.Name, line)
			}
		case strings.HasSuffix(strings.TrimSpace(line), path.Base(stagegen.JWSTFile)):
			if !clockRE.MatchString(line) {
				t.Errorf("%s: recent file listed as %q, want HH:MM", s.Name, line)
			}
		case strings.Contains(line, path.Base(stagegen.LinkFile)):
			if !strings.HasPrefix(line, "l") || !strings.HasSuffix(strings.TrimSpace(line), "-> "+stagegen.LinkTarget) {
				t.Errorf("%s: symlink listed as %q", s.Name, line)
			}
		}
	}
}

// TestPasvAddress: the server announces 127.0.0.2 but listens on 127.0.0.1
// only, so a client that follows the 227 address fails and one that uses
// the control connection's host (or EPSV) succeeds.
func TestPasvAddress(t *testing.T) {
	st := NewStage(t, stagegen.StageOptions{ManyFiles: -1, LargeSize: 1 << 20})
	servers := []*Server{StartVsftpd(t, Options{Stage: st, PasvAddress: "127.0.0.2"})}
	if _, err := pureFTPdBinary(); err == nil || isCI() {
		servers = append(servers, StartPureFTPd(t, Options{Stage: st, PasvAddress: "127.0.0.2"}))
	}
	for _, s := range servers {
		t.Run(s.Name, func(t *testing.T) {
			c := dialCtrl(t, s, 0)
			c.login(false)
			host, port := c.pasv(false)
			if host != "127.0.0.2" {
				t.Fatalf("PASV announced %s, want 127.0.0.2", host)
			}
			if conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), 2*time.Second); err == nil {
				conn.Close()
				t.Fatalf("connected to the announced %s:%d; the server should listen on 127.0.0.1 only", host, port)
			}
			if code, msg, _, _ := c.data("LIST /" + stagegen.AnonDir); code != 226 {
				t.Errorf("EPSV LIST: %d %s", code, msg)
			}
			c.quit()

			r := curl(t, s, false, "/"+stagegen.AnonDir+"/", "-v", "--disable-epsv")
			if r.code != 0 || !strings.Contains(r.errs, "(127,0,0,2,") {
				t.Errorf("curl skipping the PASV address: exit %d\n%s", r.code, lastLines(r.errs, 8))
			}
			r = curl(t, s, false, "/"+stagegen.AnonDir+"/", "--disable-epsv", "--no-ftp-skip-pasv-ip", "--connect-timeout", "5")
			if r.code == 0 {
				t.Errorf("curl following the PASV address to 127.0.0.2 succeeded")
			}
		})
	}
}

// TestRestart: same port, new process, clients can log in again.
func TestRestart(t *testing.T) {
	st := NewStage(t, stagegen.StageOptions{ManyFiles: -1, LargeSize: 1 << 20})
	for _, s := range []*Server{StartVsftpd(t, Options{Stage: st}), startPureIfAny(t, st)} {
		if s == nil {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			c := dialCtrl(t, s, 0)
			c.login(false)
			port, pid := s.Port, s.PID()
			s.Restart(t)
			if s.Port != port || s.PID() == pid || s.PID() == 0 {
				t.Errorf("after Restart: port %d pid %d, before port %d pid %d", s.Port, s.PID(), port, pid)
			}
			// The old session is gone with the old server.
			_ = c.conn.SetDeadline(time.Now().Add(5 * time.Second))
			if code, _ := c.sendNoFail("NOOP"); code == 200 {
				t.Errorf("session survived the restart")
			}
			checkDownload(t, s, true, stagegen.HSTFile, stagegen.HSTFile)
		})
	}
}

func startPureIfAny(t *testing.T, st *stagegen.Stage) *Server {
	if _, err := pureFTPdBinary(); err != nil && !isCI() {
		t.Logf("pure-ftpd left out: %v", err)
		return nil
	}
	return StartPureFTPd(t, Options{Stage: st})
}

// sendNoFail sends a command and returns 0 when the connection is dead.
func (c *ctrl) sendNoFail(cmd string) (int, string) {
	if err := c.tp.PrintfLine("%s", cmd); err != nil {
		return 0, err.Error()
	}
	code, msg, err := c.tp.ReadResponse(0)
	if err != nil && code == 0 {
		return 0, err.Error()
	}
	return code, msg
}

// TestConnectionCaps: beyond MaxClients or MaxPerIP, a new connection is
// greeted with 421.
func TestConnectionCaps(t *testing.T) {
	st := NewStage(t, stagegen.StageOptions{ManyFiles: -1, LargeSize: 1 << 20})
	servers := []*Server{
		StartVsftpd(t, Options{Stage: st, MaxClients: 2, Name: "vsftpd-max-clients"}),
		StartVsftpd(t, Options{Stage: st, MaxPerIP: 2, Name: "vsftpd-max-per-ip"}),
	}
	if s := startPureIfAnyWith(t, Options{Stage: st, MaxClients: 2}); s != nil {
		servers = append(servers, s)
	}
	for _, k := range Kinds() {
		if k.Name == "proftpd-tls13" || k.Impl == "pyftpdlib" {
			servers = append(servers, StartKinds(t, st, Options{MaxClients: 2}, []Kind{k})...)
			servers = append(servers, StartKinds(t, st, Options{MaxPerIP: 2, Name: k.Name + "-per-ip"}, []Kind{k})...)
		}
	}
	for _, s := range servers {
		t.Run(s.Name, func(t *testing.T) {
			if s.Quirks.CapAtLogin {
				checkCapAtLogin(t, s)
				return
			}
			var held []net.Conn
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			// The readiness probe's session may still be counted for a
			// moment after it quit: retry until two sessions are held.
			deadline := time.Now().Add(30 * time.Second)
			for len(held) < 2 && time.Now().Before(deadline) {
				conn, err := net.Dial("tcp", s.Addr())
				if err != nil {
					t.Fatal(err)
				}
				if line, _ := greeting(conn, s); strings.HasPrefix(line, "220") {
					held = append(held, conn)
					continue
				}
				conn.Close()
				time.Sleep(50 * time.Millisecond)
			}
			if len(held) < 2 {
				t.Fatalf("could not hold 2 sessions")
			}
			conn, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			line, err := greeting(conn, s)
			if !strings.HasPrefix(line, "421") {
				t.Errorf("third connection got %q (%v), want 421", line, err)
			}
			t.Logf("%s: %s", s.Name, line)
		})
	}
}

// checkCapAtLogin: with two sessions logged in, a third is greeted 220
// and its PASS answered 530 for the cap.
func checkCapAtLogin(t *testing.T, s *Server) {
	t.Helper()
	for range 2 {
		dialCtrl(t, s, 0).login(false)
	}
	c := dialCtrl(t, s, 0)
	c.cmd(331, "USER %s", s.AnonUser)
	code, msg := c.send("PASS %s", s.AnonPassword)
	if code != 530 || !strings.Contains(msg, "maximum") {
		t.Errorf("third session's PASS: %d %s; want 530 for the cap", code, msg)
	}
	t.Logf("%s: PASS %d %s", s.Name, code, msg)
}

func startPureIfAnyWith(t *testing.T, o Options) *Server {
	if _, err := pureFTPdBinary(); err != nil && !isCI() {
		return nil
	}
	return StartPureFTPd(t, o)
}

// greeting reads the first line, over TLS for implicit servers. pure-ftpd
// greets with several "220-" lines; the first one is enough.
func greeting(conn net.Conn, s *Server) (string, error) {
	if s.Implicit {
		conn = tls.Client(conn, &tls.Config{RootCAs: s.RootCAs, ServerName: s.Host})
	}
	return readLine(conn)
}

// TestStop: Stop ends the server and the session processes it forked, and
// can be called again.
func TestStop(t *testing.T) {
	st := NewStage(t, stagegen.StageOptions{ManyFiles: -1, LargeSize: 1 << 20})
	for _, s := range []*Server{StartVsftpd(t, Options{Stage: st, Implicit: true}), startPureIfAny(t, st)} {
		if s == nil {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			c := dialCtrl(t, s, 0)
			c.login(true)
			pgid := s.PID()
			procs := sessionPIDs(pgid)
			if len(procs) < 2 {
				t.Errorf("%d processes with a session open, want 2 or more", len(procs))
			}
			s.Stop()
			s.Stop()
			for _, pid := range procs {
				if processAlive(pid) {
					t.Errorf("process %d left after Stop", pid)
				}
			}
			if s.PID() != 0 {
				t.Errorf("PID %d after Stop", s.PID())
			}
			if err := syscall.Kill(pgid, 0); err == nil {
				t.Errorf("server pid %d still exists", pgid)
			}
			if conn, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
				conn.Close()
				t.Errorf("port %d still accepts connections", s.Port)
			}
		})
	}
}

// TestMaxTLS: a server capped at TLS 1.2 negotiates 1.2 with a Go client
// that offers 1.3.
func TestMaxTLS(t *testing.T) {
	st := NewStage(t, stagegen.StageOptions{ManyFiles: -1, LargeSize: 1 << 20})
	o := Options{Stage: st, MaxTLS: tls.VersionTLS12}
	servers := []*Server{StartVsftpd(t, o)}
	if s := startPureIfAnyWith(t, o); s != nil {
		servers = append(servers, s)
	}
	for _, s := range servers {
		t.Run(s.Name, func(t *testing.T) {
			c := dialCtrl(t, s, 0)
			c.login(true)
			if v := c.tls.ConnectionState().Version; v != tls.VersionTLS12 {
				t.Errorf("control connection %s, want TLS 1.2", tlsName(v))
			}
			code, msg, _, st := c.data("LIST /" + st.UserDir)
			if code != 226 || st.Version != tls.VersionTLS12 {
				t.Errorf("LIST: %d %s over %s", code, msg, tlsName(st.Version))
			}
			c.quit()
		})
	}
}
