package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mastfs/cmd/mastfs/internal/status"
	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// TestRefresh: while a stage fills, mastfs refresh shows a file that
// arrived, one that went and one that grew at once, not after the
// listing's TTL, and says so one name a line.
func TestRefresh(t *testing.T) {
	privateRuntime(t)
	st := ftpstest.NewStage(t, stagegen.StageOptions{LargeSize: 4 << 20, ManyFiles: -1})
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: st})
	m := startMount(t, s, "", "--remote-dir", "/"+stagegen.AnonDir, "--dir-cache-ttl", "1h")
	dir := st.Local(stagegen.AnonDir)
	gone, grows := filepath.Base(stagegen.SpaceFile), filepath.Base(stagegen.HSTFile)
	names := func() []string {
		ents, err := os.ReadDir(m.dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	before := names()
	if !slices.Contains(before, gone) || !slices.Contains(before, grows) {
		t.Fatalf("the stage lacks %s or %s: %q", gone, grows, before)
	}

	// The stage moves on: one file arrives, one goes, one grows.
	if err := os.WriteFile(filepath.Join(dir, "arrived.fits"), []byte("SIMPLE  =                    T"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, gone)); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, grows), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bytes.Repeat([]byte{' '}, 2880)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	grown, err := os.Stat(filepath.Join(dir, grows))
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names(), "arrived.fits") {
		t.Fatal("the new file shows before any refresh: the test proves nothing with this TTL")
	}

	out := mustRun(t, "refresh", m.dir)
	for _, want := range []string{"+ arrived.fits\n", "- " + gone + "\n", "~ " + grows + "\n",
		"1 added, 1 removed, 1 changed\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("mastfs refresh output lacks %q:\n%s", want, out)
		}
	}
	now := names()
	if !slices.Contains(now, "arrived.fits") || slices.Contains(now, gone) {
		t.Errorf("after refresh the mount lists %q", now)
	}
	if fi, err := os.Stat(filepath.Join(m.dir, grows)); err != nil || fi.Size() != grown.Size() {
		t.Errorf("%s after refresh: %v, %v; want size %d", grows, fi, err, grown.Size())
	}
	if got, want := sha(t, filepath.Join(m.dir, grows)), sha(t, filepath.Join(dir, grows)); got != want {
		t.Errorf("%s read after refresh differs from the server's", grows)
	}

	// Again, from inside the mount and as JSON: nothing changed since.
	var r status.Refreshed
	if err := json.Unmarshal([]byte(mustRun(t, "refresh", "--json", m.dir+"/.")), &r); err != nil {
		t.Fatal(err)
	}
	if r.Dirs < 1 || len(r.Added)+len(r.Removed)+len(r.Changed) != 0 {
		t.Errorf("second refresh: %+v, want listings dropped and nothing changed", r)
	}
	if res := runMastfs(t, "refresh", t.TempDir()); res.code != exitFailure || !strings.Contains(res.stderr, "not on a mastfs mount") {
		t.Errorf("refresh outside a mount: exit %d, %s", res.code, res.stderr)
	}
}
