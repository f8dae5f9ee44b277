package netproxy_test

import (
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"mastfs/ftps/ftpstest/netproxy"
)

const (
	listenHost = "127.0.0.3"
	targetHost = "127.0.0.1"
)

// target is a plain TCP server on 127.0.0.1 that runs handle for every
// connection; the test's cleanup closes it and waits for its handlers.
type target struct {
	Port int
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
}

func startTarget(t testing.TB, handle func(c *net.TCPConn)) *target {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(targetHost, "0"))
	if err != nil {
		t.Fatal(err)
	}
	s := &target{Port: ln.Addr().(*net.TCPAddr).Port, ln: ln, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

// Close stops the server, closes its connections and waits for handlers.
func (s *target) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// echo sends back what it reads and half-closes after the client does.
func echo(c *net.TCPConn) {
	if _, err := io.Copy(c, c); err == nil {
		c.CloseWrite()
	}
	io.Copy(io.Discard, c)
}

// hashThenStream reads to EOF, answers the SHA-256 of what it read, then
// streams n bytes of the seeded stream and closes.
func hashThenStream(n int64, seed uint64) func(c *net.TCPConn) {
	return func(c *net.TCPConn) {
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			return
		}
		if _, err := c.Write(h.Sum(nil)); err != nil {
			return
		}
		io.CopyN(c, stream(seed), n)
	}
}

// source streams n bytes of the seeded stream (n < 0: without end) and
// closes; errs, if not nil, receives the write error that ended it.
func source(n int64, seed uint64, errs chan<- error) func(c *net.TCPConn) {
	return func(c *net.TCPConn) {
		var err error
		if n < 0 {
			_, err = io.Copy(c, stream(seed))
		} else {
			_, err = io.CopyN(c, stream(seed), n)
		}
		if errs != nil {
			select {
			case errs <- err:
			default:
			}
		}
	}
}

// sink reads to EOF and answers how many bytes it read, as decimal text.
func sink(c *net.TCPConn) {
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return
	}
	c.Write([]byte(strconv.FormatInt(n, 10)))
}

func stream(seed uint64) io.Reader { return rand.NewChaCha8(seedBytes(seed)) }

func seedBytes(seed uint64) [32]byte {
	var b [32]byte
	for i := range 8 {
		b[i] = byte(seed >> (8 * i))
	}
	return b
}

func streamSum(seed uint64, n int64) [32]byte {
	h := sha256.New()
	io.CopyN(h, stream(seed), n)
	return [32]byte(h.Sum(nil))
}

// startProxy starts a proxy from 127.0.0.3 to 127.0.0.1 on ports and
// closes it when the test ends.
func startProxy(t *testing.T, cfg netproxy.Config, ports ...int) *netproxy.Proxy {
	t.Helper()
	cfg.ListenHost, cfg.TargetHost, cfg.Ports = listenHost, targetHost, ports
	p, err := netproxy.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close proxy: %v", err)
		}
	})
	return p
}

func dial(t *testing.T, p *netproxy.Proxy, port int) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(port), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip sends msg and reads the same number of bytes back.
func roundTrip(t *testing.T, c net.Conn, msg string) time.Duration {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != msg {
		t.Fatalf("echo: got %q, want %q", got, msg)
	}
	return time.Since(start)
}

// readErr reads c until it fails and returns the bytes read and the error
// (io.EOF for an orderly close), giving up after limit.
func readErr(c net.Conn, limit time.Duration) (int64, error) {
	c.SetReadDeadline(time.Now().Add(limit))
	n, err := io.Copy(io.Discard, c)
	if err == nil {
		err = io.EOF
	}
	return n, err
}

// dialAndRead connects to port and reads until the connection fails. A
// proxy that resets at once may do so before connect(2) has returned: then
// the dial itself fails with the reset, which is returned as the error.
func dialAndRead(t *testing.T, p *netproxy.Proxy, port int, limit time.Duration) (int64, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(port), 10*time.Second)
	if errors.Is(err, syscall.ECONNRESET) {
		return 0, err
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return readErr(c, limit)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
