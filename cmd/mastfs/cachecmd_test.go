package main

import (
	"encoding/json"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// TestCacheDuAndClear: cache du lists a file read through the mount with its
// cached bytes and size; cache clear is refused while the mount runs and
// deletes nothing then; once unmounted it empties the cache.
func TestCacheDuAndClear(t *testing.T) {
	privateRuntime(t)
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	m := startMount(t, s, "", "--remote-dir", "/"+stagegen.AnonDir)
	f, _ := s.Stage.Lookup(stagegen.HSTFile)
	if got := sha(t, filepath.Join(m.dir, path.Base(f.Path))); got != f.SHA256 {
		t.Fatal("read the wrong bytes")
	}

	du := mustRun(t, "cache", "du", "--cache-dir", m.cacheDir)
	if !strings.Contains(du, "/"+f.Path) || !strings.Contains(du, "100%") || !strings.Contains(du, "1 file,") {
		t.Errorf("cache du:\n%s", du)
	}
	var listed []struct {
		Path   string `json:"path"`
		Cached int64  `json:"cached_bytes"`
		Size   int64  `json:"size"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "cache", "du", "--json", "--cache-dir", m.cacheDir)), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].Path != "/"+f.Path || listed[0].Cached != f.Size || listed[0].Size != f.Size {
		t.Errorf("cache du --json: %+v, want %s with %d of %d bytes", listed, f.Path, f.Size, f.Size)
	}

	r := runMastfs(t, "cache", "clear", "--cache-dir", m.cacheDir)
	if r.code != exitFailure || !strings.Contains(r.stderr, "in use by a running mount") ||
		!strings.Contains(r.stderr, "mastfs unmount "+m.dir) {
		t.Errorf("clear while mounted: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if du2 := mustRun(t, "cache", "du", "--cache-dir", m.cacheDir); du2 != du {
		t.Errorf("a refused clear changed the cache:\n%s", du2)
	}
	if got := sha(t, filepath.Join(m.dir, path.Base(f.Path))); got != f.SHA256 {
		t.Error("the mount reads wrong bytes after a refused clear")
	}

	if err := m.stop(t); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, "cache", "clear", "--cache-dir", m.cacheDir); !strings.Contains(out, "cleared") || !strings.Contains(out, "1 file") {
		t.Errorf("clear: %s", out)
	}
	if out := mustRun(t, "cache", "du", "--cache-dir", m.cacheDir); !strings.Contains(out, "nothing cached") {
		t.Errorf("du after clear: %s", out)
	}
}
