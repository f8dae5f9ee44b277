package main

import (
	"path"
	"path/filepath"
	"strings"
	"testing"

	"mastfs/cmd/internal/human"
	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// TestPrefetchFillsCache: mastfs prefetch of a whole mount reads every file
// into the cache, so that a new mount on the same cache reads them all, with
// the right bytes, and the server sends nothing.
func TestPrefetchFillsCache(t *testing.T) {
	privateRuntime(t)
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	m := startMount(t, s, "", "--remote-dir", "/"+stagegen.AnonDir)
	var files []*stagegen.File
	var total int64
	for _, f := range s.Stage.Files {
		if strings.HasPrefix(f.Path, stagegen.AnonDir+"/") && !f.IsDir() && !f.IsLink() {
			files = append(files, f)
			total += f.Size
		}
	}

	out := mustRun(t, "prefetch", "-j", "4", m.dir)
	if !strings.Contains(out, "prefetched "+human.Plural(int64(len(files)), "file")+", "+human.Bytes(total)) {
		t.Errorf("prefetch of %d files, %d bytes, says:\n%s", len(files), total, out)
	}
	if !strings.Contains(out, "ok ") || !strings.Contains(out, "from the server") {
		t.Errorf("prefetch without a terminal should print plain lines and what came from the server:\n%.2000s", out)
	}
	if err := m.stop(t); err != nil {
		t.Fatalf("unmount: %v\n%s", err, m.log(t))
	}

	// The transfer log is written as each transfer ends: the prefetch's
	// last ones may land after the first mount is gone.
	before := sessionsEnded(t, s)
	sp := serverSpec(s, "--remote-dir", "/"+stagegen.AnonDir)
	sp.cacheDir = m.cacheDir
	again := startMastfs(t, sp)
	for _, f := range files {
		rel := strings.TrimPrefix(f.Path, stagegen.AnonDir+"/")
		if got := sha(t, filepath.Join(again.dir, filepath.FromSlash(rel))); got != f.SHA256 {
			t.Errorf("%s: wrong bytes from the cache", path.Base(f.Path))
		}
	}
	if r := statusOf(t, again.dir); r.Cache.BytesFetched != 0 || r.Cache.Misses != 0 {
		t.Errorf("after prefetch, reading everything fetched %d bytes (%d misses)", r.Cache.BytesFetched, r.Cache.Misses)
	}
	if after := settledSent(t, s); after != before {
		t.Errorf("server sent %d bytes of files after prefetch", after-before)
	}

	// Paths off the mount are refused with the reason.
	if r := runMastfs(t, "prefetch", t.TempDir()); r.code != exitFailure || !strings.Contains(r.stderr, "not on a mastfs mount") {
		t.Errorf("prefetch of a plain directory: exit %d, %q", r.code, r.stderr)
	}
}
