//go:build !linux

package netproxy

import (
	"net"
	"time"
)

// drain gives the kernel a moment to hand written bytes to the peer before
// a reset discards them; only Linux can tell when it has.
func drain(c *net.TCPConn, done <-chan struct{}) {
	select {
	case <-done:
	case <-time.After(50 * time.Millisecond):
	}
}
