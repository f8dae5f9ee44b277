package ftps_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"mastfs/fs/stage"
	"mastfs/ftps"
	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// clientFor returns a client logged in to s as the anonymous user, or as
// the account when auth is set.
func clientFor(t *testing.T, s *ftpstest.Server, auth bool, tune func(*ftps.Config)) *ftps.Client {
	t.Helper()
	cfg := ftps.Config{
		Host: s.Host, Port: s.Port, TLS: ftps.Explicit, RootCAs: s.RootCAs,
		User: s.AnonUser, Password: s.AnonPassword, Timeout: 20 * time.Second,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if s.Implicit {
		cfg.TLS = ftps.Implicit
	}
	if auth {
		cfg.User, cfg.Password = s.User, s.Password
	}
	if tune != nil {
		tune(&cfg)
	}
	c, err := ftps.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func readAll(t *testing.T, c *ftps.Client, p string, off int64) []byte {
	t.Helper()
	rc, err := c.ReadAt(ctx(t), p, off)
	if err != nil {
		t.Fatalf("ReadAt %s: %v", p, err)
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("close %s: %v", p, err)
	}
	return b
}

// TestInterop runs the same checks against every server of the matrix,
// anonymous and authenticated.
func TestInterop(t *testing.T) {
	for _, s := range ftpstest.Matrix(t) {
		for _, auth := range []bool{false, true} {
			name := s.Name + "/anonymous"
			if auth {
				name = s.Name + "/account"
			}
			t.Run(name, func(t *testing.T) { interop(t, s, auth) })
		}
	}
}

func interop(t *testing.T, s *ftpstest.Server, auth bool) {
	c := clientFor(t, s, auth, nil)
	st := s.Stage

	// The listing matches the stage: names, types, sizes, link targets, times.
	got, err := c.List(ctx(t), "/"+stagegen.AnonDir)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	want := st.Children(stagegen.AnonDir)
	if len(got) != len(want) {
		t.Errorf("listed %d entries, stage has %d: %v", len(got), len(want), got)
	}
	byName := map[string]stage.Entry{}
	for _, e := range got {
		byName[e.Name] = e
	}
	for _, f := range want {
		name := f.Path[strings.LastIndexByte(f.Path, '/')+1:]
		e, ok := byName[name]
		if !ok {
			t.Errorf("%s missing from listing", name)
			continue
		}
		switch {
		case f.IsLink():
			if e.Type != stage.Link || e.Target != f.Target {
				t.Errorf("%s: got %v -> %q, want link -> %q", name, e.Type, e.Target, f.Target)
			}
			continue
		case f.IsDir():
			if e.Type != stage.Dir {
				t.Errorf("%s: got %v, want dir", name, e.Type)
			}
			continue
		}
		if e.Type != stage.File || e.Size != f.Size {
			t.Errorf("%s: got %v size %d, want file size %d", name, e.Type, e.Size, f.Size)
		}
		if d := f.ModTime.Sub(e.ModTime); d < 0 || d >= 24*time.Hour ||
			(e.ModTime.Hour()+e.ModTime.Minute() != 0 && d >= time.Minute) {
			t.Errorf("%s: listed time %v, file time %v", name, e.ModTime, f.ModTime)
		}
	}

	// Whole files and ranged reads give the server's bytes.
	for _, p := range []string{stagegen.HSTFile, stagegen.SpaceFile, stagegen.UnicodeFile, stagegen.NestedFile} {
		f, _ := st.Lookup(p)
		sum := sha256.Sum256(readAll(t, c, "/"+p, 0))
		if hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Errorf("%s: sha256 differs", p)
		}
	}
	local, err := os.ReadFile(st.Local(stagegen.LargeFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 2880, 12345678, int64(len(local)) - 100} {
		rc, err := c.ReadAt(ctx(t), "/"+stagegen.LargeFile, off)
		if err != nil {
			t.Fatalf("ReadAt %d: %v", off, err)
		}
		buf := make([]byte, 100)
		if _, err := io.ReadFull(rc, buf); err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		rc.Close()
		if !bytes.Equal(buf, local[off:off+100]) {
			t.Errorf("bytes at %d differ", off)
		}
	}

	// What the user may not read gives a 550 kind, and the connection
	// survives it. ftps tells a denied directory from a missing one,
	// whatever the server's words.
	_, err = c.List(ctx(t), "/"+stagegen.PrivateDir)
	if !errors.Is(err, iofs.ErrPermission) || errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("list private: %v, want permission denied", err)
	}
	_, err = c.List(ctx(t), "/"+stagegen.AnonDir+"/no-such-dir")
	if !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("list a missing directory: %v, want not found", err)
	}
	_, err = c.ReadAt(ctx(t), "/"+stagegen.SecretFile, 0)
	if !errors.Is(err, iofs.ErrNotExist) && !errors.Is(err, iofs.ErrPermission) {
		t.Errorf("read secret: %v", err)
	}
	_, err = c.ReadAt(ctx(t), "/"+stagegen.AnonDir+"/no-such-file.fits", 0)
	if !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("read missing: %v, want not found", err)
	}
	userList, err := c.List(ctx(t), "/"+st.UserDir)
	switch {
	case auth && err != nil:
		t.Errorf("account cannot list its own stage: %v", err)
	case auth && len(userList) == 0:
		t.Errorf("account's stage listed empty")
	case !auth && err == nil:
		t.Errorf("anonymous listed the account's stage: %v", userList)
	}
	// Transfers after the first find their data connection made ahead.
	if st := c.Stats(); st.ReadyUsed < st.DataConns/3 {
		t.Errorf("%d of %d data connections were made ahead", st.ReadyUsed, st.DataConns)
	}
	// The key exchange the server chose is learned, to be offered first:
	// vsftpd sets P-256 alone, which crypto/tls offers last.
	if kx := c.Stats().KeyExchange; kx == 0 || (s.Impl == "vsftpd" && kx != tls.CurveP256) {
		t.Errorf("key exchange learned: %v", kx)
	}
	// pure-ftpd sometimes leaves a transfer cut short unanswered; the client
	// then drops that connection, by design.
	if stats := c.Stats(); stats.Discarded != 0 && s.Impl != "pure-ftpd" {
		t.Errorf("%d connections discarded, want 0: %+v", stats.Discarded, stats)
	}
}

// TestManyDataConnections opens 200 data connections in a row on one
// control connection: TLS 1.3 tickets are single-use, and clients have
// seen later data connections refused for want of session reuse.
func TestManyDataConnections(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  uint16
	}{{"tls13", 0}, {"tls12", tls.VersionTLS12}} {
		t.Run(tc.name, func(t *testing.T) {
			s := ftpstest.StartVsftpd(t, ftpstest.Options{MaxTLS: tc.max, Stage: sharedStage(t)})
			c := clientFor(t, s, false, func(c *ftps.Config) { c.MaxConns = 1 })
			for i := range 200 {
				if i%2 == 0 {
					if _, err := c.List(ctx(t), "/"+stagegen.AnonDir); err != nil {
						t.Fatalf("list %d: %v", i, err)
					}
				} else {
					readAll(t, c, "/"+stagegen.HSTFile, int64(i))
				}
			}
			st := c.Stats()
			if st.Dials != 1 || st.DataConns < 200 || st.Discarded != 0 || st.Retries != 0 {
				t.Errorf("stats %+v: want 1 dial, 200 data connections, nothing discarded or retried", st)
			}
			want := uint16(tls.VersionTLS13)
			if tc.max != 0 {
				want = tc.max
			}
			if st.TLSVersion != want {
				t.Errorf("data connections used %s, want %s", tls.VersionName(st.TLSVersion), tls.VersionName(want))
			}
		})
	}
}

var (
	stageOnce sync.Once
	shared    *stagegen.Stage
)

// sharedStage writes one default stage for the tests of this package.
func sharedStage(t *testing.T) *stagegen.Stage {
	stageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mastfs-stage-")
		if err != nil {
			t.Fatal(err)
		}
		shared, err = stagegen.WriteStage(dir, stagegen.StageOptions{ManyFiles: 50})
		if err != nil {
			t.Fatal(err)
		}
	})
	if shared == nil {
		t.Fatal("no stage")
	}
	return shared
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		os.RemoveAll(shared.Root)
	}
	os.Exit(code)
}

// TestPASVAddressIgnored: a server behind NAT announces an address we
// cannot reach; data connections must go to the control connection's host.
func TestPASVAddressIgnored(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{PasvAddress: "127.0.0.2", Stage: sharedStage(t)})
	for _, epsv := range []bool{false, true} {
		c := clientFor(t, s, false, func(c *ftps.Config) { c.DisableEPSV = !epsv })
		f, _ := s.Stage.Lookup(stagegen.HSTFile)
		if got := readAll(t, c, "/"+stagegen.HSTFile, 0); int64(len(got)) != f.Size {
			t.Errorf("epsv=%v: read %d bytes, want %d", epsv, len(got), f.Size)
		}
	}
}

// TestEarlyCloseKeepsConnection: a stream closed after part of a file leaves
// its connection in step, so it is reused rather than redialed.
func TestEarlyCloseKeepsConnection(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	c := clientFor(t, s, false, func(c *ftps.Config) { c.MaxConns = 1 })
	local, err := os.ReadFile(s.Stage.Local(stagegen.LargeFile))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		off := int64(i) * 1 << 20
		rc, err := c.ReadAt(ctx(t), "/"+stagegen.LargeFile, off)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		if _, err := io.ReadFull(rc, buf); err != nil {
			t.Fatal(err)
		}
		if err := rc.Close(); err != nil {
			t.Fatalf("early close: %v", err)
		}
		if !bytes.Equal(buf, local[off:off+1<<20]) {
			t.Fatalf("bytes at %d differ", off)
		}
		if _, err := c.List(ctx(t), "/"+stagegen.AnonDir); err != nil {
			t.Fatalf("list after early close: %v", err)
		}
	}
	if st := c.Stats(); st.Dials != 1 || st.Discarded != 0 {
		t.Errorf("stats %+v: want the one connection reused throughout", st)
	}
}

// TestTooManyConnections: a server that caps connections per address makes
// the pool shrink to what it accepts, and every read still succeeds.
func TestTooManyConnections(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{MaxPerIP: 2, Stage: sharedStage(t)})
	c := clientFor(t, s, false, func(c *ftps.Config) { c.MaxConns = 4 })
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc, err := c.ReadAt(ctx(t), "/"+stagegen.LargeFile, int64(i)<<20)
			if err != nil {
				errs <- err
				return
			}
			_, err = io.CopyN(io.Discard, rc, 4<<20)
			rc.Close()
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := c.Stats(); st.Limit > 2 {
		t.Errorf("pool limit %d after 421s, want at most 2", st.Limit)
	}
}

// TestLoginFailure: a wrong password gives a clear error and one attempt.
func TestLoginFailure(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	if err := s.ResetLogs(); err != nil {
		t.Fatal(err)
	}
	c := clientFor(t, s, true, func(c *ftps.Config) { c.Password = "wrong-password" })
	_, err := c.List(ctx(t), "/")
	if !errors.Is(err, ftps.ErrLogin) {
		t.Fatalf("err = %v, want ErrLogin", err)
	}
	if want := "login failed for " + s.User + " at " + s.Host; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("error shows the password: %v", err)
	}
	cmds, err := s.Commands()
	if err != nil {
		t.Fatal(err)
	}
	users := 0
	for _, cmd := range cmds {
		if strings.HasPrefix(strings.ToUpper(cmd), "USER") {
			users++
		}
	}
	if users != 1 {
		t.Errorf("%d login attempts, want 1: %q", users, cmds)
	}
}

// TestBadNameNeverReachesWire: CR, LF or NUL in a path is refused before
// anything is sent, so no name can inject a command.
func TestBadNameNeverReachesWire(t *testing.T) {
	c, err := ftps.New(ftps.Config{Host: "127.0.0.1", Port: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range []string{"/a\r\nDELE /b", "/a\nb", "/a\x00b"} {
		if _, err := c.ReadAt(context.Background(), p, 0); !errors.Is(err, ftps.ErrBadName) {
			t.Errorf("ReadAt(%q) = %v", p, err)
		}
		if _, err := c.List(context.Background(), p); !errors.Is(err, ftps.ErrBadName) {
			t.Errorf("List(%q) = %v", p, err)
		}
	}
	if st := c.Stats(); st.Dials != 0 {
		t.Errorf("%d dials for refused names", st.Dials)
	}
}

// TestCheck runs the doctor against a real server.
func TestCheck(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	var out bytes.Buffer
	cfg := ftps.Config{Host: s.Host, Port: s.Port, RootCAs: s.RootCAs, User: s.AnonUser, Password: s.AnonPassword}
	if err := ftps.Check(ctx(t), cfg, "/"+stagegen.AnonDir, &out); err != nil {
		t.Fatalf("check: %v\n%s", err, out.String())
	}
	t.Logf("check:\n%s", out.String())
	for _, want := range []string{"TLS handshake: TLS 1.3", "login as anonymous", "PROT P",
		"demands TLS session reuse", "ranged read", "all checks passed",
		"data connection made ahead", "takes every practice", " ms\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}
	// An untrusted certificate is a failed step with a hint.
	out.Reset()
	cfg.RootCAs = nil
	if err := ftps.Check(ctx(t), cfg, "/", &out); err == nil || !strings.Contains(out.String(), "--ca-file") {
		t.Errorf("untrusted certificate: err %v, output:\n%s", err, out.String())
	}
}
