package ftpstest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mastfs/ftps/stagegen"
)

// TestInteropMatrix checks every kind with curl (list, download, denied)
// and a bare Go control connection, and pins each quirk: what Go's client
// meets there and curl does not.
func TestInteropMatrix(t *testing.T) {
	servers := InteropMatrix(t)
	if isCI() && len(servers) != len(Kinds()) {
		t.Fatalf("started %d of %d kinds", len(servers), len(Kinds()))
	}
	for _, s := range servers {
		t.Run(s.Name, func(t *testing.T) {
			st := s.Stage
			if s.Quirks.EarlyBytesRefused {
				// curl 7.88 sends its ClientHello on a data connection
				// as soon as it is made, with the command or before it:
				// such a server breaks it off, so curl proves nothing here.
				r := curl(t, s, false, "/"+stagegen.AnonDir+"/")
				t.Logf("%s: curl list: exit %d %s", s.Name, r.code, lastLines(r.errs, 2))
			} else {
				checkCurl(t, s)
			}

			if err := s.ResetLogs(); err != nil {
				t.Fatal(err)
			}
			c := dialCtrl(t, s, 0)
			c.login(false)
			ver := c.tls.ConnectionState().Version
			code, msg, body, _ := c.data("LIST /" + stagegen.AnonDir)
			if s.Quirks.TicketlessReuse {
				if ver != tls.VersionTLS12 || code != 425 {
					t.Errorf("Go client over %s: LIST %d %s; want 425 (no session-ID resumption)", tlsName(ver), code, msg)
				}
			} else {
				if code != 226 || !bytes.Contains(body, []byte(path.Base(stagegen.HSTFile))) {
					t.Errorf("Go client over %s: LIST %d %s\n%s", tlsName(ver), code, msg, body)
				}
				checkListDates(t, s, string(body))
				f, _ := st.Lookup(stagegen.HSTFile)
				code, msg, body, _ = c.data("RETR /" + stagegen.HSTFile)
				if code != 226 || sha(body) != f.SHA256 {
					t.Errorf("Go client: RETR %d %s, %d bytes; want 226 and %d bytes", code, msg, len(body), f.Size)
				}
				checkLogs(t, s, f)
			}
			feat := c.feat()
			if s.Quirks.MLSDRefused {
				hasMLSD := slices.ContainsFunc(feat, func(f string) bool { return strings.HasPrefix(f, "MLST") })
				c.pasv(true)
				code, msg := c.send("MLSD /%s", stagegen.AnonDir)
				if !hasMLSD || code != 550 {
					t.Errorf("MLSD refused: FEAT has MLST %v, MLSD %d %s; want advertised and 550", hasMLSD, code, msg)
				}
			}
			c.quit()
			t.Logf("%s: control %s, FEAT %s", s.Name, tlsName(ver), strings.Join(feat, ", "))
		})
	}
}

// checkCurl lists a stage and downloads from it with curl, anonymous and
// as the account, and expects 550 where the stage denies.
func checkCurl(t *testing.T, s *Server) {
	t.Helper()
	st := s.Stage
	r := curl(t, s, false, "/"+stagegen.AnonDir+"/")
	if r.code != 0 {
		t.Fatalf("curl list: exit %d: %s", r.code, r.errs)
	}
	for _, f := range st.Children(stagegen.AnonDir) {
		if !bytes.Contains(r.out, []byte(" "+path.Base(f.Path))) {
			t.Errorf("curl listing lacks %q:\n%s", f.Path, r.out)
		}
	}
	checkDownloads(t, s, false, map[string]string{
		stagegen.HSTFile: stagegen.HSTFile, stagegen.SpaceFile: stagegen.SpaceFile,
		stagegen.UnicodeFile: stagegen.UnicodeFile, stagegen.EmptyFile: stagegen.EmptyFile,
		stagegen.LinkFile: stagegen.AnonDir + "/" + stagegen.LinkTarget,
	})
	checkDownload(t, s, true, st.UserFile, st.UserFile)
	checkDenied(t, s, false, "/"+stagegen.SecretFile)
	checkDenied(t, s, false, "/"+st.UserFile)
}

// TestEarlyBytes: a server with EarlyBytesRefused closes a data connection
// whose TLS handshake starts before the transfer command, and serves one
// that stays silent until it.
func TestEarlyBytes(t *testing.T) {
	var kinds []Kind
	for _, k := range Kinds() {
		if k.Impl == "pyftpdlib" || k.Name == "vsftpd-explicit" {
			kinds = append(kinds, k)
		}
	}
	st := NewStage(t, stagegen.StageOptions{ManyFiles: -1, LargeSize: 1 << 20})
	for _, s := range StartKinds(t, st, Options{}, kinds) {
		t.Run(s.Name, func(t *testing.T) {
			c := dialCtrl(t, s, 0)
			c.login(false)

			// Silent until the command: works everywhere.
			_, port := c.pasv(true)
			code, msg, body, _ := c.dataPort(port, "LIST /"+stagegen.AnonDir)
			if code != 226 || len(body) == 0 {
				t.Fatalf("silent early connection: LIST %d %s", code, msg)
			}

			// The ClientHello before the command.
			_, port = c.pasv(true)
			raw, err := net.DialTimeout("tcp", net.JoinHostPort(s.Host, strconv.Itoa(port)), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
			dc := tls.Client(raw, c.conf)
			handshake := make(chan error, 1)
			go func() { handshake <- dc.Handshake() }()
			if s.Quirks.EarlyBytesRefused {
				// The server reads the ClientHello before any command,
				// and breaks the connection off.
				select {
				case err := <-handshake:
					if err == nil {
						t.Fatalf("handshake before the command succeeded; want the connection closed")
					}
					t.Logf("%s: early handshake: %v", s.Name, err)
				case <-time.After(30 * time.Second):
					t.Fatalf("early handshake neither failed nor succeeded in 30s")
				}
				return // a command now would get 150 and then no final reply
			}
			// Others answer the ClientHello once the command came.
			if code, msg := c.send("LIST /%s", stagegen.AnonDir); code != 150 && code != 125 {
				t.Fatalf("LIST after an early ClientHello: %d %s", code, msg)
			}
			if err := <-handshake; err != nil {
				t.Fatalf("early handshake: %v", err)
			}
			if _, err := io.ReadAll(dc); err != nil {
				t.Fatalf("read listing: %v", err)
			}
			dc.Close()
			c.reply()
			c.quit()
		})
	}
}

// TestTraverseOnly: with the stage's parents at mode 711 a session reaches
// a stage by path but cannot list its parents.
func TestTraverseOnly(t *testing.T) {
	var kinds []Kind
	for _, k := range Kinds() {
		if k.Name == "vsftpd-explicit" || k.Name == "proftpd-tls13" || k.Impl == "pyftpdlib" {
			kinds = append(kinds, k)
		}
	}
	st := NewStage(t, stagegen.StageOptions{ManyFiles: -1, LargeSize: 1 << 20})
	for _, s := range StartKinds(t, st, Options{TraverseOnly: true}, kinds) {
		t.Run(s.Name, func(t *testing.T) {
			if f, _ := st.Lookup("anonymous"); f.Mode.Perm() != 0o711 {
				t.Errorf("anonymous/ recorded as %v, want 711", f.Mode)
			}
			c := dialCtrl(t, s, 0)
			c.login(false)
			code, msg, body, _ := c.data("LIST /anonymous")
			if bytes.Contains(body, []byte(path.Base(stagegen.AnonDir))) {
				t.Errorf("listing of a traverse-only parent shows its stages:\n%s", body)
			}
			t.Logf("%s: LIST /anonymous: %d %s %q", s.Name, code, msg, body)
			code, msg, body, _ = c.data("LIST /" + stagegen.AnonDir)
			if code != 226 || !bytes.Contains(body, []byte(path.Base(stagegen.HSTFile))) {
				t.Errorf("stage listing under a traverse-only parent: %d %s\n%s", code, msg, body)
			}
			f, _ := st.Lookup(stagegen.HSTFile)
			if code, msg, body, _ = c.data("RETR /" + stagegen.HSTFile); code != 226 || sha(body) != f.SHA256 {
				t.Errorf("RETR under a traverse-only parent: %d %s, %d bytes", code, msg, len(body))
			}
			if code, msg := c.send("CWD /%s", stagegen.AnonDir); code != 250 {
				t.Errorf("CWD into the stage: %d %s", code, msg)
			}
			c.quit()
		})
	}
}

// checkLogs expects the download of f, and nothing else, in the transfer
// log since the last ResetLogs, and its RETR in the command log.
func checkLogs(t *testing.T, s *Server, f *stagegen.File) {
	t.Helper()
	trs, err := s.WaitTransfers(1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := Transfer{Path: "/" + f.Path, Bytes: f.Size, User: "anonymous", Complete: true}
	if tr := trs[0]; len(trs) != 1 || tr.Path != want.Path || tr.Bytes != want.Bytes || tr.User != want.User || tr.Incoming || !tr.Complete {
		t.Errorf("transfers %+v, want one like %+v", trs, want)
	}
	cmds, err := s.Commands()
	if errors.Is(err, errors.ErrUnsupported) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(cmds, "\n")
	if !slices.Contains(cmds, "RETR /"+f.Path) || !slices.Contains(cmds, "PASS <hidden>") || strings.Contains(joined, s.AnonPassword) {
		t.Errorf("commands lack RETR /%s or a hidden PASS, or show the password:\n%s", f.Path, joined)
	}
}

// TestSince: Since counts what happened after a mark, connections
// included where the server logs them, and nothing before it.
func TestSince(t *testing.T) {
	st := NewStage(t, stagegen.StageOptions{ManyFiles: -1, LargeSize: 1 << 20})
	s := StartVsftpd(t, Options{Stage: st})
	checkDownload(t, s, false, stagegen.HSTFile, stagegen.HSTFile)
	m := s.Mark()
	for range 2 {
		checkDownload(t, s, false, stagegen.SpaceFile, stagegen.SpaceFile)
	}
	if _, err := s.WaitTransfers(3, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	a, err := s.Since(m)
	if err != nil {
		t.Fatal(err)
	}
	retrs := 0
	for _, c := range a.Commands {
		if strings.HasPrefix(c, "RETR ") {
			retrs++
		}
	}
	if a.Connects != 2 || retrs != 2 || len(a.Transfers) != 2 || a.Transfers[0].Path != s.LogPath(stagegen.SpaceFile) {
		t.Errorf("since the mark: %d connects, %d RETRs, transfers %+v; want 2, 2 and two of %s",
			a.Connects, retrs, a.Transfers, stagegen.SpaceFile)
	}
}
