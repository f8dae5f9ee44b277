package ftpsd

import (
	"context"
	"crypto/tls"
	"io"
	"testing"

	"mastfs/ftps"
	"mastfs/ftps/stagegen"
)

// TestClientFallsBackToTLS12: a server that refuses TLS 1.3 data
// connections (522) gets TLS 1.2 from the client from then on, without the
// user doing anything, and every operation still succeeds.
func TestClientFallsBackToTLS12(t *testing.T) {
	ts := startWith(t, nil, func(c *Config) { c.RefuseTLS13Data = true })
	c := ts.client(t, func(c *ftps.Config) { c.MaxConns = 2; c.Retries = 2 })
	ctx := context.Background()
	if err := c.Warm(ctx, 2); err != nil { // idle connections dialed under 1.3, too
		t.Fatal(err)
	}
	for range 5 {
		if _, err := c.List(ctx, "/"+stagegen.AnonDir); err != nil {
			t.Fatalf("list: %v", err)
		}
		rc, err := c.ReadAt(ctx, "/"+stagegen.HSTFile, 100)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	st := c.Stats()
	if st.TLSFallbacks != 1 || st.TLSVersion != tls.VersionTLS12 {
		t.Errorf("stats %+v: want one fallback and TLS 1.2 data connections", st)
	}
}
