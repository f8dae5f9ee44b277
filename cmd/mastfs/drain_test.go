package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// keptRE is the unmount's account of the chunks that were on their way.
var keptRE = regexp.MustCompile(`kept (\d+) chunks in flight, dropped (\d+)`)

// TestUnmountKeepsChunkInFlight: a header read answered before its chunk
// is whole, then an unmount at once: the unmount finishes the chunk and
// says so, and after a remount the same read costs the server nothing.
func TestUnmountKeepsChunkInFlight(t *testing.T) {
	st := ftpstest.NewStage(t, stagegen.StageOptions{ManyFiles: -1, LargeSize: 64 << 20})
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: st})
	args := []string{"--remote-dir", "/" + stagegen.AnonDir}
	m := startMount(t, s, "", args...)
	large := filepath.Join(m.dir, "large/large.fits")
	f, _ := st.Lookup(stagegen.LargeFile)
	header := func() []byte {
		t.Helper()
		fh, err := os.Open(large)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		b := make([]byte, 2880)
		if _, err := io.ReadFull(fh, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := header()
	if err := m.stop(t); err != nil {
		t.Fatal(err)
	}
	got := keptRE.FindStringSubmatch(m.log(t))
	if got == nil {
		t.Fatalf("the unmount did not say what it kept of the chunks in flight:\n%s", lastLogLines(m.log(t), 15))
	}
	kept, _ := strconv.Atoi(got[1])
	dropped, _ := strconv.Atoi(got[2])
	t.Logf("unmount: kept %d, dropped %d", kept, dropped)

	sessionsEnded(t, s) // the first mount's transfers are logged before the count restarts
	if err := s.ResetLogs(); err != nil {
		t.Fatal(err)
	}
	m2 := m.remount(t, args...)
	if again := header(); string(again) != string(first) {
		t.Fatal("the header read after the remount differs from the first")
	}
	if m2.stop(t) != nil {
		t.Fatal("second mount did not stop cleanly")
	}
	sent := sessionsEnded(t, s)
	switch {
	case dropped == 0 && sent != 0:
		t.Errorf("nothing was dropped at the unmount, yet the same read fetched %d bytes after the remount", sent)
	case dropped > 0 && sent > f.Size:
		t.Errorf("the read after the remount fetched %d bytes, more than the file", sent)
	}
}
