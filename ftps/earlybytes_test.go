package ftps

import (
	"context"
	"io"
	"testing"
	"time"

	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// pyftpdlib drops a data connection that speaks before its transfer
// command, then waits for another. Once it has dropped the one made ahead,
// a listing is tried again at once (no backoff, no time-out), and every
// later data connection stays silent until its command is answered.
func TestEarlyBytesRefused(t *testing.T) {
	s := ftpstest.StartPyftpdlib(t, ftpstest.Options{})
	if !s.Quirks.EarlyBytesRefused {
		t.Fatalf("%s: not a server that refuses early bytes", s.Name)
	}
	c, err := New(Config{Host: s.Host, Port: s.Port, RootCAs: s.RootCAs, User: s.AnonUser, Password: s.AnonPassword,
		MaxConns: 1, Timeout: 20 * time.Second, KeepAlive: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	cn := idleConn(t, c, 1)
	cn.mu.Lock()
	dc := cn.ready.dc
	cn.mu.Unlock()
	select {
	case <-dc.hs: // the handshake ended: the server dropped it
	case <-time.After(time.Minute):
		t.Fatal("the server kept a data connection that spoke first")
	}

	dir := "/" + stagegen.AnonDir
	for range 3 {
		if _, err := c.List(ctx, dir); err != nil {
			t.Fatalf("list %s: %v", dir, err)
		}
	}
	want, _ := s.Stage.Lookup(stagegen.HSTFile)
	rc, err := c.ReadAt(ctx, "/"+stagegen.HSTFile, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || int64(len(got)) != want.Size {
		t.Fatalf("read: %d bytes, %v; want %d", len(got), err, want.Size)
	}
	if !c.lateTLS.Load() {
		t.Error("data connections still start TLS before the command")
	}
	if st := c.Stats(); st.Retries != 0 || st.Discarded != 1 || st.ReadyUsed < 4 {
		t.Errorf("retries %d, discarded %d, reads on data connections made ahead %d; want 0, 1 (the dropped one's), 4",
			st.Retries, st.Discarded, st.ReadyUsed)
	}
}
