package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// sentAfter waits until the server has logged at least want transfers
// since ResetLogs (a stream still open is logged only when it ends) and
// returns the bytes they carried.
func sentAfter(t *testing.T, s *ftpstest.Server, want int) int64 {
	t.Helper()
	trs, err := s.WaitTransfers(want, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, tr := range trs {
		n += tr.Bytes
	}
	return n
}

// TestHeaderReadFetchesOneChunk: reading the first 2,880 bytes of a large
// FITS file makes the server send at most one chunk, counted in its own log.
func TestHeaderReadFetchesOneChunk(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	m := startMount(t, s, "", "--remote-dir", "/"+stagegen.AnonDir)
	large := filepath.Join(m.dir, "large/large.fits")
	if _, err := os.Stat(large); err != nil {
		t.Fatal(err)
	}
	if err := s.ResetLogs(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(large)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2880)
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !bytes.HasPrefix(buf, []byte("SIMPLE  =")) {
		t.Fatalf("not a FITS header: %q", buf[:40])
	}
	sent := sentAfter(t, s, 1)
	// FTP has no end offset: the server sends until the client closes,
	// and what it has written into TCP buffers by then counts as sent. Its
	// send buffer is capped by tcp_wmem; ours by tcp_rmem.
	const chunk = 1 << 20
	slack := sysctlMax(t, "tcp_wmem") + sysctlMax(t, "tcp_rmem")
	t.Logf("server sent %d bytes for a 2,880-byte header read (one chunk %d, TCP buffers up to %d)", sent, chunk, slack)
	if f, _ := s.Stage.Lookup(stagegen.LargeFile); sent > chunk+slack || sent >= f.Size/4 {
		t.Errorf("server sent %d bytes: more than one %d-byte chunk and full TCP buffers", sent, chunk)
	}
}

// sysctlMax is the last field of /proc/sys/net/ipv4/NAME.
func sysctlMax(t *testing.T, name string) int64 {
	b, err := os.ReadFile("/proc/sys/net/ipv4/" + name)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRemountReusesCache: after unmount and remount on the same cache, a
// file already read is served with zero bytes from the server; a file whose
// size or time changed on the server is fetched anew.
func TestRemountReusesCache(t *testing.T) {
	st := ftpstest.NewStage(t, stagegen.StageOptions{ManyFiles: -1, LargeSize: 8 << 20})
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: st})
	args := []string{"--remote-dir", "/" + stagegen.AnonDir, "--dir-cache-ttl", "1s"}
	m := startMount(t, s, "", args...)
	large := filepath.Join(m.dir, "large/large.fits")
	f, _ := st.Lookup(stagegen.LargeFile)
	if got := sha(t, large); got != f.SHA256 {
		t.Fatal("first read differs")
	}
	if err := m.stop(t); err != nil {
		t.Fatal(err)
	}

	sessionsEnded(t, s) // the first mount's transfers are logged before the count restarts
	if err := s.ResetLogs(); err != nil {
		t.Fatal(err)
	}
	m.remount(t, args...)
	if got := sha(t, large); got != f.SHA256 {
		t.Fatal("read after remount differs")
	}
	time.Sleep(2 * time.Second) // let any stream that was opened end and be logged
	if trs, err := s.Transfers(); err != nil || len(trs) != 0 {
		t.Errorf("server logged %v (%v) after remount, want no transfer", trs, err)
	}

	// Change the file on the server: new bytes, new time. The mount must
	// notice through the listing and serve the new bytes.
	local := st.Local(stagegen.LargeFile)
	data, err := os.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}
	copy(data[4096:], bytes.Repeat([]byte("changed!"), 64))
	data = data[:len(data)-2880]
	if err := os.WriteFile(local, data, 0o644); err != nil {
		t.Fatal(err)
	}
	newTime := time.Now().Add(-time.Hour).Truncate(time.Minute)
	if err := os.Chtimes(local, newTime, newTime); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // past the listing TTL
	got, err := os.ReadFile(large)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("after the server's file changed, read %d bytes that differ from its %d new bytes", len(got), len(data))
	}
}
