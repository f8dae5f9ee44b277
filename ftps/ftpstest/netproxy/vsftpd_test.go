package netproxy_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"mastfs/ftps/ftpstest"
	"mastfs/ftps/ftpstest/netproxy"
	"mastfs/ftps/stagegen"
)

// TestThroughVsftpd puts the proxy in front of a real FTPS server that
// announces the proxy's address, and checks that control and data
// connections both pass through it, slowed by its window, and that a cut
// data connection ends a download early.
func TestThroughVsftpd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts vsftpd")
	}
	const (
		size   = 8 << 20
		window = 1 << 20
		delay  = 25 * time.Millisecond
	)
	st := ftpstest.NewStage(t, stagegen.StageOptions{LargeSize: size, ManyFiles: -1})
	s, p := ftpstest.StartBehindProxy(t, ftpstest.Options{Stage: st}, netproxy.Config{Delay: delay, Window: window})

	start := time.Now()
	c, err := ftp.Dial(p.Addr(s.Port), ftp.DialWithExplicitTLS(s.TLSConfig()), ftp.DialWithTimeout(30*time.Second))
	if err != nil {
		t.Fatalf("dial through the proxy: %v", err)
	}
	defer c.Quit()
	if err := c.Login(s.AnonUser, s.AnonPassword); err != nil {
		t.Fatalf("login: %v", err)
	}
	t.Logf("connected and logged in after %v", time.Since(start))

	entries, err := c.List("/" + stagegen.AnonDir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("list: %d entries, %v", len(entries), err)
	}

	f, ok := st.Lookup(stagegen.LargeFile)
	if !ok {
		t.Fatal("stage has no large file")
	}
	start = time.Now()
	r, err := c.Retr("/" + stagegen.LargeFile)
	if err != nil {
		t.Fatalf("retr: %v", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	took := time.Since(start)
	if err != nil || n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		t.Fatalf("retr: %d bytes of %d, %v, digest match %v", n, f.Size, err, hex.EncodeToString(h.Sum(nil)) == f.SHA256)
	}
	t.Logf("%.1f MiB through a %d KiB window, %v RTT: %v, %.1f MiB/s", mib(n), window>>10, 2*delay, took, mib(n)/took.Seconds())
	if floor := time.Duration(f.Size/window-1) * 2 * delay; took < floor {
		t.Errorf("download took %v, want >= %v: it did not pass through the window", took, floor)
	}
	stats := p.Stats()
	if stats.Accepted < 3 || stats.ToClient < f.Size {
		t.Errorf("stats %+v: want control and two data connections, %d bytes down", stats, f.Size)
	}

	p.CutAfter(0, 1<<20)
	r, err = c.Retr("/" + stagegen.LargeFile)
	if err != nil {
		t.Fatalf("retr: %v", err)
	}
	n, err = io.Copy(io.Discard, r)
	r.Close()
	// The cut counts TLS records and the data connection's handshake too.
	if err == nil || n > 1<<20 {
		t.Errorf("cut download: %d bytes, %v; want less than 1 MiB then an error", n, err)
	}
	t.Logf("cut download: %d bytes, then %v", n, err)
}
