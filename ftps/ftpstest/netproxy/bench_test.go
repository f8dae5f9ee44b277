package netproxy_test

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"mastfs/ftps/ftpstest/netproxy"
)

// BenchmarkStream measures one stream, server to client, through windows
// and delays a user may sit behind; window/RTT is the ceiling.
func BenchmarkStream(b *testing.B) {
	const size = 32 << 20
	for _, tc := range []struct {
		delay  time.Duration
		window int
	}{
		{0, 0},
		{25 * time.Millisecond, 0},
		{25 * time.Millisecond, 1 << 20},
		{50 * time.Millisecond, 4 << 20},
		{75 * time.Millisecond, 4 << 20},
	} {
		b.Run(fmt.Sprintf("delay=%v/window=%dKiB", tc.delay, tc.window>>10), func(b *testing.B) {
			srv := startTarget(b, source(size, 1, nil))
			p, err := netproxy.Start(netproxy.Config{ListenHost: listenHost, TargetHost: targetHost,
				Ports: []int{srv.Port}, Delay: tc.delay, Window: tc.window})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			b.SetBytes(size)
			for b.Loop() {
				c, err := net.DialTimeout("tcp", p.Addr(srv.Port), 10*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, c)
				c.Close()
				if err != nil || n != size {
					b.Fatalf("%d bytes, %v", n, err)
				}
			}
		})
	}
}
