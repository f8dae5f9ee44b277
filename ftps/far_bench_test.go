package ftps_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"mastfs/ftps"
	"mastfs/ftps/ftpstest"
	"mastfs/ftps/ftpstest/netproxy"
	"mastfs/ftps/stagegen"
)

// BenchmarkFarChain reads a chain of 2,880-byte reads at scattered
// offsets of one file, each closed early, as a FITS reader hopping from
// header to header does, from vsftpd behind a proxy 25 ms away each way.
// It reports the round trips each read costs: about 2 (the transfer
// command, then the data connection's TLS handshake, which the server
// finishes only once it has the command) while a pooled connection is
// ready, and about 4 on a single connection, which must get its next
// data connection between reads.
func BenchmarkFarChain(b *testing.B) {
	const delay = 25 * time.Millisecond
	st, err := stagegen.WriteStage(b.TempDir(), stagegen.StageOptions{LargeSize: 16 << 20, ManyFiles: -1})
	if err != nil {
		b.Fatal(err)
	}
	s, _ := ftpstest.StartBehindProxy(b, ftpstest.Options{Stage: st}, netproxy.Config{Delay: delay, Window: 4 << 20})
	f, _ := st.Lookup(stagegen.LargeFile)
	for _, conns := range []int{1, 4} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			c, err := ftps.New(ftps.Config{Host: ftpstest.ProxyHost, Port: s.Port, RootCAs: s.RootCAs,
				User: s.AnonUser, Password: s.AnonPassword, MaxConns: conns, Timeout: 20 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			if err := c.Warm(ctx, conns); err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 2880)
			// One read per connection first: each connection's first data
			// connection is not the steady state.
			for i := range b.N + conns {
				if i == conns {
					b.ResetTimer()
				}
				off := (int64(i) * 2880 * 97) % (f.Size - 2880)
				rc, err := c.ReadAt(ctx, "/"+f.Path, off)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(rc, buf); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
			b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(2*delay), "round-trips/read")
		})
	}
}
