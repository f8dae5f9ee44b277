package netproxy_test

import (
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mastfs/ftps/ftpstest/netproxy"
)

func wantReset(t *testing.T, what string, n int64, err error, wantN int64) {
	t.Helper()
	if n != wantN || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("%s: read %d bytes then %v; want %d bytes then a reset", what, n, err, wantN)
	}
}

// waitOpen waits up to 30 s for the proxy to count n open connections
// (a connection is counted once accepted, and forgotten just after it is
// torn down) and returns the stats it saw last.
func waitOpen(p *netproxy.Proxy, n int) netproxy.Stats {
	st := p.Stats()
	for i := 0; i < 3000 && st.Open != n; i++ {
		time.Sleep(10 * time.Millisecond)
		st = p.Stats()
	}
	return st
}

func TestCutAll(t *testing.T) {
	serverErr := make(chan error, 1)
	ctl := startTarget(t, echo)
	data := startTarget(t, source(-1, 4, serverErr))
	p := startProxy(t, netproxy.Config{Delay: 5 * time.Millisecond, Window: 256 << 10}, ctl.Port, data.Port)

	c := dial(t, p, ctl.Port)
	roundTrip(t, c, "USER x")
	d := dial(t, p, data.Port)
	d.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.CopyN(io.Discard, d, 1<<20); err != nil {
		t.Fatal(err)
	}
	if open := p.Stats().Open; open != 2 {
		t.Errorf("%d connections open, want 2", open)
	}

	p.CutAll()
	n, err := readErr(c, 10*time.Second)
	wantReset(t, "control", n, err, 0)
	if _, err := readErr(d, 10*time.Second); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("data: %v, want a reset", err)
	}
	select {
	case err := <-serverErr:
		if err == nil {
			t.Error("server finished an endless stream")
		}
	case <-time.After(10 * time.Second):
		t.Error("server still writing 10 s after CutAll")
	}

	// The proxy itself carries on.
	roundTrip(t, dial(t, p, ctl.Port), "USER y")
}

func TestCutAfter(t *testing.T) {
	const size = 1 << 20
	ctl := startTarget(t, source(size, 6, nil))
	data := startTarget(t, source(size, 6, nil))
	p := startProxy(t, netproxy.Config{Delay: 2 * time.Millisecond, Window: 256 << 10}, ctl.Port, data.Port)

	read := func(port int) (int64, [32]byte, error) {
		h := sha256.New()
		c, err := net.DialTimeout("tcp", p.Addr(port), 10*time.Second)
		if errors.Is(err, syscall.ECONNRESET) { // cut before connect(2) returned
			return 0, [32]byte(h.Sum(nil)), err
		}
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(time.Minute))
		n, err := io.Copy(h, c)
		if err == nil {
			err = io.EOF
		}
		return n, [32]byte(h.Sum(nil)), err
	}
	whole := func(what string, port int) {
		t.Helper()
		if n, _, err := read(port); n != size || err != io.EOF {
			t.Errorf("%s: %d bytes then %v; want all %d then EOF", what, n, err, size)
		}
	}

	p.CutAfter(0, 100_000)
	whole("control port, with a cut pending for data ports", ctl.Port)
	n, sum, err := read(data.Port)
	wantReset(t, "first data connection", n, err, 100_000)
	if n == 100_000 && sum != streamSum(6, n) {
		t.Error("bytes before the cut differ from those sent")
	}
	whole("second data connection", data.Port)

	p.CutAfter(ctl.Port, 10)
	p.CutAfter(data.Port, 0)
	n, _, err = read(ctl.Port)
	wantReset(t, "control after CutAfter(ctl, 10)", n, err, 10)
	n, _, err = read(data.Port)
	wantReset(t, "data after CutAfter(data, 0)", n, err, 0)
	whole("control after its cut", ctl.Port)
}

// counter counts what passes through it.
type counter struct{ n atomic.Int64 }

func (c *counter) Write(b []byte) (int, error) { c.n.Add(int64(len(b))); return len(b), nil }

func TestStall(t *testing.T) {
	// More than every socket buffer on the way and the window together.
	const size = 32 << 20
	data := startTarget(t, source(size, 9, nil))
	ctl := startTarget(t, echo)
	p := startProxy(t, netproxy.Config{Delay: time.Millisecond, Window: 1 << 20}, ctl.Port, data.Port)

	c := dial(t, p, ctl.Port)
	roundTrip(t, c, "NOOP")
	d := dial(t, p, data.Port)
	d.SetDeadline(time.Now().Add(2 * time.Minute))
	h := sha256.New()
	if _, err := io.CopyN(h, d, 1<<20); err != nil {
		t.Fatal(err)
	}

	p.Stall(true)
	var got counter
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.MultiWriter(h, &got), d)
		done <- err
	}()
	// What was past the gate when it shut may still arrive; then nothing:
	// the count holds still for 700 ms, well before the whole stream is in.
	after := got.n.Load()
	for deadline := time.Now().Add(30 * time.Second); ; {
		time.Sleep(700 * time.Millisecond)
		before := after
		if after = got.n.Load(); after == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bytes still arriving 30 s into the stall: %d after the first MiB", after)
		}
	}
	if 1<<20+after >= size {
		t.Fatalf("the whole stream arrived despite the stall")
	}
	if _, err := c.Write([]byte("PING")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 4)); !isTimeout(err) {
		t.Errorf("control answered while stalled: %d bytes, %v", n, err)
	}
	t.Logf("held after %d MiB while stalled", (1<<20+after)>>20)

	p.Stall(false)
	c.SetReadDeadline(time.Now().Add(time.Minute))
	pong := make([]byte, 4)
	if _, err := io.ReadFull(c, pong); err != nil || string(pong) != "PING" {
		t.Errorf("control after the stall: %q, %v", pong, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("data after the stall: %v", err)
	}
	if total := 1<<20 + got.n.Load(); total != size {
		t.Fatalf("received %d bytes, want %d", total, size)
	}
	if [32]byte(h.Sum(nil)) != streamSum(9, size) {
		t.Fatal("bytes held through the stall came out different")
	}
}

func TestDown(t *testing.T) {
	srv := startTarget(t, echo)
	p := startProxy(t, netproxy.Config{Delay: time.Millisecond}, srv.Port)
	c := dial(t, p, srv.Port)
	roundTrip(t, c, "before")

	p.Down(true)
	n, err := readErr(c, 10*time.Second)
	wantReset(t, "open connection when going down", n, err, 0)
	for i := range 3 {
		n, err := dialAndRead(t, p, srv.Port, 10*time.Second)
		if n != 0 || isTimeout(err) {
			t.Errorf("new connection %d while down: %d bytes, %v; want it closed at once", i, n, err)
		}
	}
	if st := waitOpen(p, 0); st.Refused != 3 || st.Open != 0 {
		t.Errorf("stats %+v, want 3 refused and none open", st)
	}

	p.Down(false)
	roundTrip(t, dial(t, p, srv.Port), "after")
}

func TestSetDelay(t *testing.T) {
	srv := startTarget(t, echo)
	p := startProxy(t, netproxy.Config{}, srv.Port)
	c := dial(t, p, srv.Port)
	roundTrip(t, c, "fast")

	p.SetDelay(50 * time.Millisecond)
	if rt := roundTrip(t, c, "slower"); rt < 100*time.Millisecond {
		t.Errorf("round trip %v after SetDelay(50ms), want >= 100ms", rt)
	}

	// Bytes already waiting out a long delay go as soon as it is lifted.
	p.SetDelay(time.Hour)
	time.AfterFunc(200*time.Millisecond, func() { p.SetDelay(0) })
	if rt := roundTrip(t, c, "waiting"); rt < 200*time.Millisecond || rt > 20*time.Second {
		t.Errorf("round trip %v across SetDelay(1h) then SetDelay(0) after 200ms", rt)
	}
}

// TestResetPropagates: a reset from either peer reaches the other.
func TestResetPropagates(t *testing.T) {
	serverSaw := make(chan error, 1)
	srv := startTarget(t, func(c *net.TCPConn) {
		_, err := io.Copy(io.Discard, c)
		serverSaw <- err
	})
	p := startProxy(t, netproxy.Config{Delay: 5 * time.Millisecond}, srv.Port)
	c := dial(t, p, srv.Port)
	if _, err := c.Write([]byte("some bytes")); err != nil {
		t.Fatal(err)
	}
	// The reset comes once the proxy has a connection to the server and
	// has delivered the bytes on it.
	for deadline := time.Now().Add(30 * time.Second); p.Stats().ToServer < int64(len("some bytes")); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the proxy delivered %d bytes in 30 s", p.Stats().ToServer)
		}
	}
	c.SetLinger(0)
	c.Close()
	select {
	case err := <-serverSaw:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("server saw %v after the client reset, want a reset", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("server saw nothing 10 s after the client reset")
	}

	resetter := startTarget(t, func(c *net.TCPConn) {
		c.Write([]byte("bye"))
		c.SetLinger(0)
	})
	p2 := startProxy(t, netproxy.Config{Delay: 5 * time.Millisecond}, resetter.Port)
	n, err := dialAndRead(t, p2, resetter.Port, 10*time.Second)
	if !errors.Is(err, syscall.ECONNRESET) || n > 3 {
		t.Errorf("client read %d bytes then %v after the server reset, want at most 3 then a reset", n, err)
	}
}

// TestCutFirstAfter: the cut falls on the first data connection to carry
// n bytes, not on one that opened first and carried less.
func TestCutFirstAfter(t *testing.T) {
	const small, large, n = 100_000, 1 << 20, 300_000
	ctl := startTarget(t, source(small, 1, nil))
	short := startTarget(t, source(small, 2, nil))
	long := startTarget(t, source(large, 3, nil))
	p := startProxy(t, netproxy.Config{Delay: time.Millisecond, Window: 256 << 10}, ctl.Port, short.Port, long.Port)
	read := func(port int) (int64, error) {
		c, err := net.DialTimeout("tcp", p.Addr(port), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(time.Minute))
		got, err := io.Copy(io.Discard, c)
		if err == nil {
			err = io.EOF
		}
		return got, err
	}
	p.CutFirstAfter(n)
	for _, port := range []int{ctl.Port, short.Port} {
		if got, err := read(port); got != small || err != io.EOF {
			t.Errorf("port %d: %d bytes then %v; want all %d then EOF", port, got, err, small)
		}
	}
	if got, err := read(long.Port); got < n || got >= large || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("long transfer: %d bytes then %v; want a reset after %d or more, before %d", got, err, n, large)
	}
	if got, err := read(long.Port); got != large || err != io.EOF {
		t.Errorf("next transfer: %d bytes then %v; the cut must fire once", got, err)
	}
}
