package netproxy_test

import (
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"mastfs/ftps/ftpstest/netproxy"
)

// TestBytesIntactBothWaysAndHalfClose sends 32 MiB up, half-closes, and
// expects the server's digest of them and then 32 MiB down: the server
// only answers once it has read EOF, so the half-close must get through.
func TestBytesIntactBothWaysAndHalfClose(t *testing.T) {
	const size = 32 << 20
	srv := startTarget(t, hashThenStream(size, 7))
	p := startProxy(t, netproxy.Config{Delay: 2 * time.Millisecond, Window: 1 << 20}, srv.Port)
	c := dial(t, p, srv.Port)
	c.SetDeadline(time.Now().Add(2 * time.Minute))

	up := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(c, up), stream(3), size); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	if _, err := io.ReadFull(c, sum[:]); err != nil {
		t.Fatalf("read digest: %v (half-close not delivered?)", err)
	}
	if sum != [32]byte(up.Sum(nil)) {
		t.Fatalf("server read other bytes than were sent")
	}
	down := sha256.New()
	n, err := io.Copy(down, c)
	if err != nil || n != size {
		t.Fatalf("receive: %d bytes, %v; want %d", n, err, size)
	}
	if [32]byte(down.Sum(nil)) != streamSum(7, size) {
		t.Fatalf("client received other bytes than were sent")
	}
	st := p.Stats()
	if st.Accepted != 1 || st.ToServer != size || st.ToClient != size+32 {
		t.Errorf("stats %+v, want 1 accepted, %d up, %d down", st, size, size+32)
	}
}

// TestEchoFullDuplex moves bytes both ways at once.
func TestEchoFullDuplex(t *testing.T) {
	const size = 8 << 20
	srv := startTarget(t, echo)
	p := startProxy(t, netproxy.Config{Delay: time.Millisecond, Window: 256 << 10}, srv.Port)
	c := dial(t, p, srv.Port)
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	sent := make(chan error, 1)
	go func() {
		_, err := io.CopyN(c, stream(11), size)
		if err == nil {
			err = c.CloseWrite()
		}
		sent <- err
	}()
	got := sha256.New()
	n, err := io.Copy(got, c)
	if err := <-sent; err != nil {
		t.Fatalf("send: %v", err)
	}
	if err != nil || n != size {
		t.Fatalf("echo: %d bytes, %v; want %d", n, err, size)
	}
	if [32]byte(got.Sum(nil)) != streamSum(11, size) {
		t.Fatal("echo came back different")
	}
}

// TestDelay checks that a round trip costs two delays, and that a new
// connection pays for its handshake as well.
func TestDelay(t *testing.T) {
	const delay = 50 * time.Millisecond
	srv := startTarget(t, echo)
	p := startProxy(t, netproxy.Config{Delay: delay}, srv.Port)
	start := time.Now()
	c := dial(t, p, srv.Port)
	first := roundTrip(t, c, "hello")
	if sinceDial := time.Since(start); sinceDial < 4*delay {
		t.Errorf("first echo %v after connecting, want >= %v (handshake + round trip)", sinceDial, 4*delay)
	}
	for i := range 3 {
		rt := roundTrip(t, c, "again"+strconv.Itoa(i))
		if rt < 2*delay {
			t.Errorf("round trip %d took %v, want >= %v", i, rt, 2*delay)
		}
		t.Logf("round trip %d: %v", i, rt)
	}
	t.Logf("first round trip %v", first)
}

// transfer moves size bytes through p in one direction and returns how
// long it took from dialling to the last byte.
func transfer(t *testing.T, p *netproxy.Proxy, port int, size int64, upward bool) time.Duration {
	t.Helper()
	start := time.Now()
	c := dial(t, p, port)
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	if upward {
		if _, err := io.CopyN(c, stream(5), size); err != nil {
			t.Fatalf("send: %v", err)
		}
		c.CloseWrite()
		b, err := io.ReadAll(c)
		if err != nil || string(b) != strconv.FormatInt(size, 10) {
			t.Fatalf("sink read %q bytes (%v), want %d", b, err, size)
		}
	} else {
		n, err := io.Copy(io.Discard, c)
		if err != nil || n != size {
			t.Fatalf("received %d bytes (%v), want %d", n, err, size)
		}
	}
	return time.Since(start)
}

// TestWindowBoundsThroughput: with a 256 KiB window and a 50 ms round trip
// no stream can move more than one window per round trip, whichever way.
func TestWindowBoundsThroughput(t *testing.T) {
	const (
		size   = 4 << 20
		window = 256 << 10
		delay  = 25 * time.Millisecond
	)
	floor := time.Duration(size/window-1) * 2 * delay
	down := startTarget(t, source(size, 1, nil))
	up := startTarget(t, sink)
	for _, tc := range []struct {
		name   string
		port   int
		upward bool
	}{{"down", down.Port, false}, {"up", up.Port, true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, netproxy.Config{Delay: delay, Window: window}, tc.port)
			took := transfer(t, p, tc.port, size, tc.upward)
			t.Logf("%d MiB with a %d KiB window and %v RTT: %v, %.1f MiB/s (window/RTT = %.1f MiB/s)",
				size>>20, window>>10, 2*delay, took, mib(size)/took.Seconds(), mib(window)/(2*delay).Seconds())
			if took < floor {
				t.Errorf("took %v, want >= %v: the window does not bound throughput", took, floor)
			}
		})
	}
	t.Run("unlimited", func(t *testing.T) {
		p := startProxy(t, netproxy.Config{Delay: delay}, down.Port)
		took := transfer(t, p, down.Port, size, false)
		t.Logf("%d MiB without a window, %v RTT: %v", size>>20, 2*delay, took)
	})
}

// TestRateCapsAllConnections: two streams share a 4 MiB/s cap.
func TestRateCapsAllConnections(t *testing.T) {
	const (
		size = 1 << 20
		rate = 4 << 20
	)
	srv := startTarget(t, source(size, 2, nil))
	p := startProxy(t, netproxy.Config{Rate: rate}, srv.Port)
	start := time.Now()
	done := make(chan error, 2)
	for range 2 {
		c := dial(t, p, srv.Port)
		go func() {
			c.SetDeadline(time.Now().Add(time.Minute))
			n, err := io.Copy(io.Discard, c)
			if err == nil && n != size {
				err = errors.New("short transfer: " + strconv.FormatInt(n, 10))
			}
			done <- err
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	// The bucket starts with a tenth of a second of tokens.
	floor := time.Duration(2*size-rate/10-1) * time.Second / rate
	t.Logf("2 x %d MiB at %d MiB/s: %v", size>>20, rate>>20, took)
	if took < floor {
		t.Errorf("took %v, want >= %v", took, floor)
	}
}

// TestManyPortsAndUnreachableTarget opens a passive range of 200 ports and
// checks that a port nobody serves resets the client.
func TestManyPortsAndUnreachableTarget(t *testing.T) {
	var p *netproxy.Proxy
	var ports []int
	for try := 0; p == nil && try < 20; try++ {
		base := 20000 + rand.IntN(40000)
		ports = ports[:0]
		for i := range 200 {
			ports = append(ports, base+i)
		}
		start := time.Now()
		var err error
		p, err = netproxy.Start(netproxy.Config{ListenHost: listenHost, TargetHost: targetHost, Ports: ports})
		if err == nil {
			t.Logf("listening on %d ports in %v", len(ports), time.Since(start))
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("opening %d ports took %v", len(ports), took)
			}
		}
	}
	if p == nil {
		t.Fatal("no free range of 200 ports on " + listenHost)
	}
	defer p.Close()
	// Nothing listens on 127.0.0.1 at a random high port, most likely.
	free, err := net.Listen("tcp", net.JoinHostPort(targetHost, strconv.Itoa(ports[len(ports)-1])))
	if err != nil {
		t.Skipf("port %d in use on %s", ports[len(ports)-1], targetHost)
	}
	free.Close()
	n, err := dialAndRead(t, p, ports[len(ports)-1], 10*time.Second)
	if n != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("unreachable target: read %d bytes, %v; want a reset", n, err)
	}
}

// TestStartRejects checks configurations that cannot work.
func TestStartRejects(t *testing.T) {
	for _, cfg := range []netproxy.Config{
		{ListenHost: listenHost, TargetHost: targetHost},
		{ListenHost: listenHost, TargetHost: targetHost, Ports: []int{0}},
		{ListenHost: listenHost, TargetHost: targetHost, Ports: []int{40000, 40000}},
		{TargetHost: targetHost, Ports: []int{40000}},
	} {
		if p, err := netproxy.Start(cfg); err == nil {
			p.Close()
			t.Errorf("Start(%+v) succeeded", cfg)
		}
	}
	// A port already taken fails Start and leaves the others closed.
	taken, err := net.Listen("tcp", net.JoinHostPort(listenHost, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().(*net.TCPAddr).Port
	spare, err := net.Listen("tcp", net.JoinHostPort(listenHost, "0"))
	if err != nil {
		t.Fatal(err)
	}
	other := spare.Addr().(*net.TCPAddr).Port
	spare.Close()
	if p, err := netproxy.Start(netproxy.Config{ListenHost: listenHost, TargetHost: targetHost, Ports: []int{other, busy}}); err == nil {
		p.Close()
		t.Fatal("Start on a taken port succeeded")
	}
	again, err := net.Listen("tcp", net.JoinHostPort(listenHost, strconv.Itoa(other)))
	if err != nil {
		t.Fatalf("port %d still held after a failed Start: %v", other, err)
	}
	again.Close()
}
