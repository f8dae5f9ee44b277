package ftpsd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mastfs/fs/stage"
	"mastfs/ftps"
	"mastfs/ftps/stagegen"
)

// testServer is a running server on loopback with a small stage.
type testServer struct {
	srv   *Server
	host  string
	port  int
	pool  *x509.CertPool
	tls   *tls.Config
	stage *stagegen.Stage
}

func start(t *testing.T, users map[string]string) *testServer {
	t.Helper()
	return startWith(t, users, nil)
}

// startWith is start with the server's Config adjusted by mod.
func startWith(t *testing.T, users map[string]string, mod func(*Config)) *testServer {
	t.Helper()
	st, err := stagegen.WriteStage(filepath.Join(t.TempDir(), "stage"), stagegen.StageOptions{LargeSize: 3 << 20, ManyFiles: 5})
	if err != nil {
		t.Fatal(err)
	}
	cert, certPEM, err := SelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	cfg := Config{Root: st.Root, TLS: &tls.Config{Certificates: []tls.Certificate{cert}},
		Anonymous: true, Users: users, Logger: slog.New(slog.DiscardHandler), DataTimeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &testServer{srv: srv, host: "127.0.0.1", port: addr.(*net.TCPAddr).Port, pool: pool, stage: st,
		tls: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", ClientSessionCache: tls.NewLRUClientSessionCache(4)}}
}

func (ts *testServer) client(t *testing.T, mod func(*ftps.Config)) *ftps.Client {
	t.Helper()
	cfg := ftps.Config{Host: ts.host, Port: ts.port, TLS: ftps.Explicit, RootCAs: ts.pool,
		Password: "me@example.org", Timeout: 5 * time.Second, Retries: 1, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&cfg)
	}
	c, err := ftps.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestMastfsClient: mastfs's own client lists (MLSD) and reads ranges, over
// EPSV and over PASV, and a stream closed early leaves the connection usable.
func TestMastfsClient(t *testing.T) {
	ts := start(t, nil)
	for _, pasv := range []bool{false, true} {
		t.Run("pasv="+strconv.FormatBool(pasv), func(t *testing.T) {
			c := ts.client(t, func(cfg *ftps.Config) { cfg.DisableEPSV = pasv })
			ctx := context.Background()
			list, err := c.List(ctx, "/"+stagegen.AnonDir)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]stage.Entry{}
			for _, e := range list {
				got[e.Name] = e
			}
			want := ts.stage.Children(stagegen.AnonDir)
			if len(got) != len(want) {
				t.Errorf("listed %d entries, stage has %d", len(got), len(want))
			}
			for _, f := range want {
				e, ok := got[path.Base(f.Path)]
				switch {
				case !ok:
					t.Errorf("%s not listed", f.Path)
				case f.IsLink():
					if e.Type != stage.Link || e.Target != f.Target {
						t.Errorf("%s: type %v target %q", f.Path, e.Type, e.Target)
					}
				case f.IsDir():
					if e.Type != stage.Dir {
						t.Errorf("%s: type %v, want a directory", f.Path, e.Type)
					}
				default:
					if e.Type != stage.File || e.Size != f.Size || !e.ModTime.Equal(f.ModTime) {
						t.Errorf("%s: %+v, want size %d mtime %v", f.Path, e, f.Size, f.ModTime)
					}
				}
			}

			local, err := os.ReadFile(ts.stage.Local(stagegen.LargeFile))
			if err != nil {
				t.Fatal(err)
			}
			for _, off := range []int64{0, 12345, int64(len(local)) - 100} {
				r, err := c.ReadAt(ctx, "/"+stagegen.LargeFile, off)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(r)
				r.Close()
				if err != nil || !bytes.Equal(b, local[off:]) {
					t.Fatalf("read at %d: %d bytes, %v; differs from the file", off, len(b), err)
				}
			}
			// Stop after a little: the next read still works.
			r, err := c.ReadAt(ctx, "/"+stagegen.LargeFile, 1000)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4096)
			if _, err := io.ReadFull(r, buf); err != nil || !bytes.Equal(buf, local[1000:1000+4096]) {
				t.Fatalf("partial read: %v", err)
			}
			r.Close()
			if _, err := c.List(ctx, "/"); err != nil {
				t.Fatalf("list after an early close: %v", err)
			}
		})
	}
}

// TestCheck: mastfs check's walk passes every step.
func TestCheck(t *testing.T) {
	ts := start(t, nil)
	cfg := ftps.Config{Host: ts.host, Port: ts.port, TLS: ftps.Explicit, RootCAs: ts.pool, Password: "x@y",
		Timeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)}
	var out bytes.Buffer
	if err := ftps.Check(context.Background(), cfg, "/"+stagegen.AnonDir, &out); err != nil {
		t.Fatalf("check: %v\n%s", err, out.String())
	}
}

// TestAccounts: a named account logs in with its password only.
func TestAccounts(t *testing.T) {
	ts := start(t, map[string]string{"alice": "s3cret"})
	ctx := context.Background()
	ok := ts.client(t, func(c *ftps.Config) { c.User, c.Password = "alice", "s3cret" })
	if _, err := ok.List(ctx, "/"); err != nil {
		t.Fatalf("alice: %v", err)
	}
	bad := ts.client(t, func(c *ftps.Config) { c.User, c.Password = "alice", "wrong" })
	if _, err := bad.List(ctx, "/"); !errors.Is(err, ftps.ErrLogin) {
		t.Fatalf("wrong password: %v, want ErrLogin", err)
	}
}

// TestCommandLog: every command is logged, the password never.
func TestCommandLog(t *testing.T) {
	log, err := os.Create(filepath.Join(t.TempDir(), "commands"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	ts := startWith(t, map[string]string{"alice": "s3cret"}, func(c *Config) { c.CommandLog = log })
	c := ts.client(t, func(c *ftps.Config) { c.User, c.Password = "alice", "s3cret" })
	if _, err := c.List(context.Background(), "/"+stagegen.AnonDir); err != nil {
		t.Fatal(err)
	}
	c.Close()
	b, err := os.ReadFile(log.Name())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if !slices.Contains(lines, "USER alice") || !slices.Contains(lines, "PASS <hidden>") ||
		!slices.ContainsFunc(lines, func(l string) bool { return strings.HasSuffix(l, " /"+stagegen.AnonDir) }) ||
		strings.Contains(string(b), "s3cret") {
		t.Errorf("command log lacks USER, the hidden PASS or the listing, or shows the password:\n%s", b)
	}
}

// control is a raw control connection for protocol tests.
type control struct {
	t  *testing.T
	tp *textproto.Conn
}

func dialControl(t *testing.T, ts *testServer) *control {
	t.Helper()
	c, err := net.Dial("tcp", net.JoinHostPort(ts.host, strconv.Itoa(ts.port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	ctl := &control{t: t, tp: textproto.NewConn(c)}
	ctl.expect(220, "")
	ctl.cmd(234, "AUTH TLS")
	tc := tls.Client(c, ts.tls)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	ctl.tp = textproto.NewConn(tc)
	return ctl
}

func (c *control) expect(code int, contains string) string {
	c.t.Helper()
	got, msg, err := c.tp.ReadResponse(0)
	if got != code || err != nil && got == 0 || !strings.Contains(msg, contains) {
		c.t.Fatalf("reply %d %q (%v), want %d with %q", got, msg, err, code, contains)
	}
	return msg
}

func (c *control) cmd(code int, line string) string {
	c.t.Helper()
	if err := c.tp.PrintfLine("%s", line); err != nil {
		c.t.Fatal(err)
	}
	return c.expect(code, "")
}

// TestProtocol: replies to the commands a client may send, including the
// refusals: no clear-text login, no unprotected data, no writes, no
// climbing out of the root.
func TestProtocol(t *testing.T) {
	ts := start(t, nil)
	if err := os.Symlink("/etc/hostname", filepath.Join(ts.stage.Root, "escape")); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", net.JoinHostPort(ts.host, strconv.Itoa(ts.port)))
	if err != nil {
		t.Fatal(err)
	}
	plain := &control{t: t, tp: textproto.NewConn(c)}
	plain.expect(220, "")
	plain.cmd(530, "USER anonymous") // no login before AUTH TLS
	c.Close()

	ctl := dialControl(t, ts)
	ctl.cmd(530, "PWD") // not logged in
	ctl.cmd(331, "USER anonymous")
	ctl.cmd(230, "PASS me@example.org")
	feat := ctl.cmd(211, "FEAT")
	for _, f := range []string{"MLST", "REST STREAM", "EPSV", "AUTH TLS", "PROT", "UTF8"} {
		if !strings.Contains(feat, f) {
			t.Errorf("FEAT lacks %s: %q", f, feat)
		}
	}
	ctl.cmd(200, "TYPE I")
	ctl.cmd(536, "PROT C")
	ctl.cmd(521, "RETR /"+stagegen.HSTFile) // PROT P not given yet
	ctl.cmd(200, "PBSZ 0")
	ctl.cmd(200, "PROT P")
	ctl.cmd(425, "RETR /"+stagegen.HSTFile) // no EPSV or PASV before
	if got := ctl.cmd(257, "PWD"); !strings.Contains(got, `"/"`) {
		t.Errorf("PWD: %q", got)
	}
	ctl.cmd(250, "CWD /"+stagegen.AnonDir)
	ctl.cmd(250, "CDUP")
	if got := ctl.cmd(257, "PWD"); !strings.Contains(got, `"/anonymous"`) {
		t.Errorf("PWD after CDUP: %q", got)
	}
	ctl.cmd(550, "CWD /no/such/dir")
	hst, _ := ts.stage.Lookup(stagegen.HSTFile)
	if got := ctl.cmd(213, "SIZE /"+stagegen.HSTFile); got != strconv.FormatInt(hst.Size, 10) {
		t.Errorf("SIZE: %q, want %d", got, hst.Size)
	}
	if got := ctl.cmd(213, "MDTM /"+stagegen.HSTFile); got != hst.ModTime.UTC().Format("20060102150405") {
		t.Errorf("MDTM: %q", got)
	}
	if got := ctl.cmd(250, "MLST /"+stagegen.LinkFile); !strings.Contains(got, "type=OS.unix=slink:"+stagegen.LinkTarget+";") {
		t.Errorf("MLST of a link: %q", got)
	}
	for _, w := range []string{"STOR x", "DELE /" + stagegen.HSTFile, "MKD /d", "RNFR /" + stagegen.HSTFile} {
		ctl.cmd(550, w)
	}
	ctl.cmd(502, "PORT 127,0,0,1,4,1")
	ctl.cmd(550, "RETR ../../../../etc/hostname")
	ctl.cmd(550, "RETR /escape")
	ctl.cmd(501, "REST -5")
	ctl.cmd(221, "QUIT")
}

// TestListFormats: LIST lines parse back, with mastfs's parser, into the
// entries they came from.
func TestListFormats(t *testing.T) {
	ts := start(t, nil)
	entries, err := ts.srv.backend.(*dirBackend).readDir(stagegen.AnonDir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var lines, mlsd bytes.Buffer
	for _, e := range entries {
		lines.WriteString(longLine(e, now) + "\r\n")
		mlsd.WriteString(facts(e.info, e.target) + " " + e.name + "\r\n")
	}
	fromList, problems := ftps.ParseList(lines.Bytes(), now)
	if len(problems) > 0 {
		t.Fatalf("LIST lines do not parse: %v\n%s", problems, lines.String())
	}
	fromMLSD, problems := ftps.ParseMLSD(mlsd.Bytes())
	if len(problems) > 0 {
		t.Fatalf("MLSD lines do not parse: %v\n%s", problems, mlsd.String())
	}
	if len(fromList) != len(entries) || len(fromMLSD) != len(entries) {
		t.Fatalf("%d entries, parsed %d (LIST) and %d (MLSD)", len(entries), len(fromList), len(fromMLSD))
	}
	for i, e := range entries {
		for _, got := range []stage.Entry{fromList[i], fromMLSD[i]} {
			if got.Name != e.name || got.Target != e.target || (!e.info.IsDir() && e.target == "" && got.Size != e.info.Size()) {
				t.Errorf("%s: parsed %+v", e.name, got)
			}
		}
	}
}
