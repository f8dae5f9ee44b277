package netproxy_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mastfs/ftps/ftpstest/netproxy"
)

// TestCloseLeavesNothing closes a proxy with connections in every state
// (idle, mid-transfer, blocked on a reader, stalled, mid-handshake) and
// expects no goroutine and no listening socket left behind.
func TestCloseLeavesNothing(t *testing.T) {
	base := runtime.NumGoroutine()

	ctl := startTarget(t, echo)
	data := startTarget(t, source(-1, 8, nil))
	spare, err := net.Listen("tcp", net.JoinHostPort(listenHost, "0"))
	if err != nil {
		t.Fatal(err)
	}
	unserved := spare.Addr().(*net.TCPAddr).Port
	spare.Close()
	ports := []int{ctl.Port, data.Port, unserved}
	p := startProxy(t, netproxy.Config{Delay: 20 * time.Millisecond, Window: 256 << 10, Rate: 64 << 20}, ports...)

	roundTrip(t, dial(t, p, ctl.Port), "idle afterwards")
	reading := dial(t, p, data.Port)
	if _, err := io.CopyN(io.Discard, reading, 1<<20); err != nil {
		t.Fatal(err)
	}
	// This one never reads: its writer blocks once the socket buffers fill.
	dial(t, p, data.Port)
	go io.Copy(io.Discard, reading)
	time.Sleep(200 * time.Millisecond)
	p.Stall(true)
	dial(t, p, ctl.Port).Write([]byte("held by the stall"))
	p.SetDelay(time.Hour)
	dial(t, p, ctl.Port) // still in its handshake
	dial(t, p, unserved)
	if open := waitOpen(p, 6).Open; open != 6 {
		t.Errorf("%d connections open before Close, want 6", open)
	}

	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	t.Logf("closed in %v", time.Since(start))
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Close took %v", took)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if open := p.Stats().Open; open != 0 {
		t.Errorf("%d connections open after Close", open)
	}

	for _, port := range ports {
		c, err := net.DialTimeout("tcp", p.Addr(port), 5*time.Second)
		if err == nil {
			c.Close()
			t.Errorf("%s still accepts after Close", p.Addr(port))
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial %s after Close: %v, want refused", p.Addr(port), err)
		}
	}
	if l := listening(t, ports); len(l) > 0 {
		t.Errorf("still listening after Close: %v", l)
	}

	ctl.Close()
	data.Close()
	now := runtime.NumGoroutine()
	for i := 0; i < 3000 && now > base; i++ {
		time.Sleep(10 * time.Millisecond)
		now = runtime.NumGoroutine()
	}
	if now > base {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Fatalf("%d goroutines before, %d after Close:\n%s", base, now, b.String())
	}
}

// listening returns the local addresses in /proc/net/tcp that listen on
// the proxy's host at one of ports.
func listening(t *testing.T, ports []int) []string {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Logf("cannot check listening sockets: %v", err)
		return nil
	}
	defer f.Close()
	ip := net.ParseIP(listenHost).To4()
	host := fmt.Sprintf("%02X%02X%02X%02X", ip[3], ip[2], ip[1], ip[0]) // little-endian
	want := make(map[string]bool, len(ports))
	for _, port := range ports {
		want[fmt.Sprintf("%s:%04X", host, port)] = true
	}
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && fields[3] == "0A" && want[fields[1]] {
			port, _ := strconv.ParseUint(fields[1][len(host)+1:], 16, 32)
			out = append(out, net.JoinHostPort(listenHost, strconv.Itoa(int(port))))
		}
	}
	return out
}
