package ftps

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"
	"time"

	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// Every kind of server takes the next transfer's EPSV sent as a
// transfer's data connection closes, in turn: a chain of reads cut short
// and read to the end, and listings, runs on one control connection, each
// transfer on a data connection made ahead, none dropped, and the bytes
// are the file's.
func TestEarlyEPSVKinds(t *testing.T) {
	for _, s := range ftpstest.InteropMatrix(t) {
		if s.Quirks.TicketlessReuse {
			continue // no data connection at all (TestInteropKinds)
		}
		t.Run(s.Name, func(t *testing.T) {
			cfg := Config{Host: s.Host, Port: s.Port, RootCAs: s.RootCAs, User: s.AnonUser, Password: s.AnonPassword,
				Timeout: 20 * time.Second, KeepAlive: time.Hour}
			if s.Implicit {
				cfg.TLS = Implicit
			}
			c := pingedClient(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			f, _ := s.Stage.Lookup(stagegen.HSTFile)
			want, err := os.ReadFile(s.Stage.Local(f.Path))
			if err != nil {
				t.Fatal(err)
			}
			dir := "/" + stagegen.AnonDir
			read := func(off int64, n int) {
				t.Helper()
				rc, err := c.ReadAt(ctx, "/"+f.Path, off)
				if err != nil {
					t.Fatalf("read at %d: %v", off, err)
				}
				var got []byte
				if n < 0 {
					got, err = io.ReadAll(rc)
				} else {
					got = make([]byte, n)
					_, err = io.ReadFull(rc, got)
				}
				if cerr := rc.Close(); err == nil {
					err = cerr
				}
				if err != nil || !bytes.Equal(got, want[off:off+int64(len(got))]) || (n < 0 && off+int64(len(got)) != int64(len(want))) {
					t.Fatalf("read at %d: %d bytes, %v; not the file's", off, len(got), err)
				}
			}
			// A data connection that speaks before its command loses the
			// transfer's reply with this server (a minute's wait, then
			// handshakes ahead turned off: TestInteropKinds). Start where
			// the client ends up.
			c.lateTLS.Store(s.Quirks.EarlyBytesRefused)
			if _, err := c.List(ctx, dir); err != nil {
				t.Fatal(err)
			}
			read(int64(len(want))/2, 100)
			idleConn(t, c, 1)
			before, early := c.Stats(), c.stats.earlyEPSV.Load()
			const rounds = 3
			for i := range rounds {
				read(int64(i+1)*int64(len(want))/(rounds+2), 100)
				read(int64(len(want))/(rounds+2)/int64(i+1), -1)
				if _, err := c.List(ctx, dir); err != nil {
					t.Fatal(err)
				}
			}
			idleConn(t, c, 1)
			after := c.Stats()
			transfers := int64(3 * rounds)
			// A server that reads commands during a transfer refuses the
			// EPSV once, and gets it after the transfer's reply from then on.
			sent := c.stats.earlyEPSV.Load() - early
			if after.Dials != before.Dials || after.Discarded != before.Discarded || after.ReadyUsed-before.ReadyUsed != transfers ||
				(sent != transfers && !c.noEarlyEPSV.Load()) {
				t.Errorf("over %d transfers: %d dials, %d dropped, %d on data connections made ahead, %d EPSVs sent as a transfer ended "+
					"(turned off: %v); want 0, 0, %d, %d", transfers, after.Dials-before.Dials, after.Discarded-before.Discarded,
					after.ReadyUsed-before.ReadyUsed, sent, c.noEarlyEPSV.Load(), transfers, transfers)
			}
		})
	}
}
