package ftps_test

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"mastfs/ftps"
	"mastfs/ftps/ftpstest"
)

// Listings a real server would never send, from a scripted one.

func hostileClient(t *testing.T, h *ftpstest.Hostile, log io.Writer) *ftps.Client {
	t.Helper()
	c, err := ftps.New(ftps.Config{Host: h.Host, Port: h.Port, RootCAs: h.RootCAs, Timeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

const goodLine = "-rw-r--r--   1 ftp      ftp          2880 Jan 02  2020 %s\r\n"

// TestHostileLongLine: a listing line longer than any name or link target
// (100 KB) costs that line, or the listing, with an error that says so;
// never a retry storm or a crash.
func TestHostileLongLine(t *testing.T) {
	h := ftpstest.StartHostile(t, ftpstest.HostileOptions{})
	body := fmt.Sprintf(goodLine, "a.fits") + "-rw-r--r-- 1 ftp ftp 1 Jan 02 2020 " + strings.Repeat("x", 100_000) + "\r\n" +
		fmt.Sprintf(goodLine, "b.fits")
	h.SetList("/d", []byte(body))
	var log ftpstest.LogBuffer
	c := hostileClient(t, h, &log)
	start := time.Now()
	ents, err := c.List(ctx(t), "/d")
	t.Logf("list with a 100 KB line: %d entries, %v, after %v", len(ents), err, time.Since(start))
	// The long name is the file system's to refuse (fs leaves out what no
	// local name can hold); the client passes it on with its neighbours.
	if err != nil || len(ents) != 3 || ents[0].Name != "a.fits" || len(ents[1].Name) != 100_000 || ents[2].Name != "b.fits" {
		t.Errorf("%d entries, %v; want a.fits, the long one, b.fits", len(ents), err)
	}
	if st := c.Stats(); st.Retries > 0 {
		t.Errorf("the listing was retried %d times", st.Retries)
	}
}

// TestHostileSkippedLinesBounded: a listing of 50,000 lines that do not
// parse gives the good entries, and a bounded number of log lines.
func TestHostileSkippedLinesBounded(t *testing.T) {
	h := ftpstest.StartHostile(t, ftpstest.HostileOptions{})
	var b strings.Builder
	b.WriteString(fmt.Sprintf(goodLine, "first.fits"))
	for i := range 50_000 {
		fmt.Fprintf(&b, "garbage line %d\r\n", i)
	}
	b.WriteString(fmt.Sprintf(goodLine, "last.fits"))
	h.SetList("/d", []byte(b.String()))
	var log ftpstest.LogBuffer
	c := hostileClient(t, h, &log)
	ents, err := c.List(ctx(t), "/d")
	if err != nil || len(ents) != 2 {
		t.Fatalf("%d entries, %v", len(ents), err)
	}
	lines := strings.Count(log.String(), "\n")
	if lines > 100 {
		t.Errorf("%d log lines for one listing of 50,000 bad lines", lines)
	}
	if !strings.Contains(log.String(), "50000") {
		t.Errorf("the log does not say how many lines were skipped:\n%s", lastN(log.String(), 5))
	}
}

// TestHostileEndlessListing: a listing that never ends is cut off at a
// bound, with an error; memory stays bounded and nothing hangs.
func TestHostileEndlessListing(t *testing.T) {
	h := ftpstest.StartHostile(t, ftpstest.HostileOptions{})
	block := []byte(strings.Repeat(fmt.Sprintf(goodLine, strings.Repeat("e", 200)), 256))
	h.SetListStream("/endless", func(w io.Writer) error {
		for {
			if _, err := w.Write(block); err != nil {
				return err
			}
		}
	})
	var log ftpstest.LogBuffer
	c := hostileClient(t, h, &log)
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := c.List(ctx(t), "/endless")
		done <- err
	}()
	var peak uint64
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-time.After(100 * time.Millisecond):
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			if time.Since(start) > 2*time.Minute {
				t.Fatal("an endless listing is still being read after 2 minutes")
			}
		}
	}
	t.Logf("endless listing: %v after %v, peak heap %d MiB", err, time.Since(start).Round(time.Millisecond), peak>>20)
	if err == nil || !strings.Contains(err.Error(), "listing") {
		t.Errorf("endless listing: %v, want an error about the listing's size", err)
	}
	if peak > 1<<30 {
		t.Errorf("peak heap %d MiB reading an endless listing", peak>>20)
	}
}

func lastN(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
