package ftps_test

import (
	"errors"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"
	"testing"

	"mastfs/fs/stage"
	"mastfs/ftps"
	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// TestInteropKinds runs a listing, a full read and a ranged read against
// every kind of server ftpstest starts. Each quirk gets the answer the
// client owes it: a server that demands TLS session reuse without
// tickets, ErrNoSessionReuse at once; a server that refuses the MLSD it
// offers, a listing by LIST; a server that drops data connections that
// speak first, the same bytes as everywhere.
func TestInteropKinds(t *testing.T) {
	servers := ftpstest.InteropMatrix(t)
	if len(servers) != len(ftpstest.Kinds()) {
		t.Logf("started %d of %d kinds", len(servers), len(ftpstest.Kinds()))
	}
	for _, s := range servers {
		t.Run(s.Name, func(t *testing.T) {
			interopKind(t, s)
			checkKind(t, s)
		})
	}
}

// checkKind runs mastfs check against s: it passes where the mount works,
// names what it turned off, and fails with the precise cause where the
// mount cannot work.
func checkKind(t *testing.T, s *ftpstest.Server) {
	cfg := ftps.Config{Host: s.Host, Port: s.Port, RootCAs: s.RootCAs, User: s.AnonUser, Password: s.AnonPassword}
	if s.Implicit {
		cfg.TLS = ftps.Implicit
	}
	var out strings.Builder
	err := ftps.Check(ctx(t), cfg, "/"+stagegen.AnonDir, &out)
	t.Logf("check:\n%s", out.String())
	switch {
	case s.Quirks.TicketlessReuse:
		if !errors.Is(err, ftps.ErrNoSessionReuse) || !strings.Contains(out.String(), "TLSSessionTickets on") {
			t.Errorf("check: %v; want ErrNoSessionReuse, said", err)
		}
	case err != nil:
		t.Errorf("check: %v", err)
	case s.Quirks.MLSDRefused && !strings.Contains(out.String(), "turned off for this server: MLSD"):
		t.Errorf("check does not say MLSD was turned off")
	}
}

func interopKind(t *testing.T, s *ftpstest.Server) {
	var log ftpstest.LogBuffer
	c := clientFor(t, s, false, func(cfg *ftps.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&log, testWriter{t}),
			&slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	dir := "/" + stagegen.AnonDir
	if err := s.ResetLogs(); err != nil {
		t.Fatal(err)
	}

	entries, err := c.List(ctx(t), dir)
	if s.Quirks.TicketlessReuse {
		if !errors.Is(err, ftps.ErrNoSessionReuse) || ftps.IsTransient(err) {
			t.Fatalf("list: %v; want ErrNoSessionReuse, not worth a retry", err)
		}
		for _, want := range []string{"TLS 1.2 without session tickets", "TLSSessionTickets on", "curl or lftp"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the error does not say %q: %v", want, err)
			}
		}
		st := c.Stats()
		if st.Retries != 0 || st.TLSFallbacks != 0 || strings.Contains(log.String(), "unreachable") {
			t.Errorf("retries %d, TLS fallbacks %d; log:\n%s", st.Retries, st.TLSFallbacks, log.String())
		}
		// A read meets the same answer, at once.
		if _, err := c.ReadAt(ctx(t), "/"+stagegen.HSTFile, 0); !errors.Is(err, ftps.ErrNoSessionReuse) {
			t.Errorf("read: %v; want ErrNoSessionReuse", err)
		}
		if n := strings.Count(log.String(), "demands TLS session reuse"); n != 1 {
			t.Errorf("the cause was logged %d times; want once:\n%s", n, log.String())
		}
		return
	}
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name] = true
	}
	want, _ := s.Stage.Lookup(stagegen.HSTFile)
	if !names[path.Base(want.Path)] {
		t.Fatalf("list %s lacks %s: %v", dir, want.Path, entries)
	}
	if s.Quirks.MLSDRefused {
		cmds, err := s.Commands()
		if err != nil {
			t.Fatal(err)
		}
		if !hasVerb(cmds, "MLSD") || !hasVerb(cmds, "LIST") {
			t.Errorf("MLSD refused: the server received %v; want one MLSD, then LIST", cmds)
		}
		if n := strings.Count(log.String(), "refuses it; listing with LIST"); n != 1 {
			t.Errorf("the fallback was logged %d times; want once:\n%s", n, log.String())
		}
		if _, err := c.List(ctx(t), dir); err != nil {
			t.Fatalf("second listing: %v", err)
		}
		cmds, _ = s.Commands()
		if n := countVerb(cmds, "MLSD"); n != 1 {
			t.Errorf("MLSD sent %d times; want once, then LIST for good", n)
		}
	}

	// A missing directory is not found at once, whatever the server's code.
	if _, err := c.List(ctx(t), dir+"/no-such-dir"); !errors.Is(err, ftps.ErrNotFound) {
		t.Errorf("list a missing directory: %v; want not found", err)
	}

	// A full read and a ranged read give the stage's bytes.
	whole := readAll(t, c, "/"+stagegen.HSTFile, 0)
	if sum(whole) != want.SHA256 {
		t.Errorf("full read: %d bytes, sha256 %s; want %d bytes, %s", len(whole), sum(whole), want.Size, want.SHA256)
	}
	off := want.Size / 3
	part := readAll(t, c, "/"+stagegen.HSTFile, off)
	if int64(len(part)) != want.Size-off || string(part) != string(whole[off:]) {
		t.Errorf("ranged read from %d: %d bytes; want the file's last %d", off, len(part), want.Size-off)
	}
	// One that stops early leaves the pool usable.
	rc, err := c.ReadAt(ctx(t), "/"+stagegen.HSTFile, 2880)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2880)
	if _, err := io.ReadFull(rc, buf); err != nil || string(buf) != string(whole[2880:5760]) {
		t.Errorf("early-closed read: %v", err)
	}
	rc.Close()
	if _, err := c.List(ctx(t), dir); err != nil {
		t.Errorf("list after an early close: %v", err)
	}
	st := c.Stats()
	t.Logf("%s: %+v", s.Name, st)
	if st.Retries != 0 {
		t.Errorf("%d retries after backoff; want none:\n%s", st.Retries, log.String())
	}
}

func hasVerb(cmds []string, verb string) bool { return countVerb(cmds, verb) > 0 }

func countVerb(cmds []string, verb string) int {
	n := 0
	for _, c := range cmds {
		if c == verb || strings.HasPrefix(c, verb+" ") {
			n++
		}
	}
	return n
}

// TestTraverseOnly: under a parent the user may enter but not read (mode
// 711), List of the parent is empty or ErrPermission, never "not found";
// the stage below it lists by its path; a missing name below it is
// ErrNotFound.
func TestTraverseOnly(t *testing.T) {
	var kinds []ftpstest.Kind
	for _, k := range ftpstest.Kinds() {
		if k.Name == "vsftpd-explicit" || k.Name == "proftpd-tls13" || k.Impl == "pyftpdlib" {
			kinds = append(kinds, k)
		}
	}
	st := ftpstest.NewStage(t, stagegen.StageOptions{ManyFiles: -1, LargeSize: 1 << 20})
	for _, s := range ftpstest.StartKinds(t, st, ftpstest.Options{TraverseOnly: true}, kinds) {
		t.Run(s.Name, func(t *testing.T) {
			var log ftpstest.LogBuffer
			c := clientFor(t, s, false, func(cfg *ftps.Config) {
				cfg.Logger = slog.New(slog.NewTextHandler(&log, nil))
			})
			parent := path.Dir("/" + stagegen.AnonDir)
			defer func() {
				// A directory's refusal is not the command's: MLSD stays on.
				if strings.Contains(log.String(), "refuses it") {
					t.Errorf("a denied directory turned a listing command off:\n%s", log.String())
				}
			}()
			entries, err := c.List(ctx(t), parent)
			if errors.Is(err, ftps.ErrNotFound) || (err != nil && !errors.Is(err, ftps.ErrPermission)) {
				t.Errorf("list %s: %v; want its entries, none, or permission denied", parent, err)
			}
			for _, e := range entries {
				if e.Name == path.Base(stagegen.AnonDir) {
					t.Errorf("list %s shows %s: the parent is not traverse-only here", parent, e.Name)
				}
			}
			stageEntries, err := c.List(ctx(t), "/"+stagegen.AnonDir)
			if err != nil || !slices.ContainsFunc(stageEntries, func(e stage.Entry) bool {
				return e.Name == path.Base(stagegen.HSTFile)
			}) {
				t.Errorf("list the stage by its path: %v, %d entries", err, len(stageEntries))
			}
			missing := parent + "/anonymous00000"
			if _, err := c.List(ctx(t), missing); !errors.Is(err, ftps.ErrNotFound) {
				t.Errorf("list %s: %v; want not found", missing, err)
			}
		})
	}
}
