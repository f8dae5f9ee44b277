package ftps

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// gatedConn holds back what the server sends on a control connection
// while shut: a reply that has not come yet.
type gatedConn struct {
	net.Conn
	mu   sync.Mutex    // guards shut
	shut chan struct{} // non-nil: reads wait until it is closed
}

func (g *gatedConn) Read(p []byte) (int, error) {
	g.mu.Lock()
	ch := g.shut
	g.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-time.After(2 * time.Minute):
		}
	}
	return g.Conn.Read(p)
}

func (g *gatedConn) close() {
	g.mu.Lock()
	g.shut = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedConn) open() {
	g.mu.Lock()
	if g.shut != nil {
		close(g.shut)
		g.shut = nil
	}
	g.mu.Unlock()
}

// idleConn waits until the pool holds n idle connections, each with its
// data connection made ahead, and returns the first.
func idleConn(t *testing.T, c *Client, n int) *conn {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		c.mu.Lock()
		idle := slices.Clone(c.idle)
		c.mu.Unlock()
		ready := 0
		for _, cn := range idle {
			cn.mu.Lock()
			if cn.ready != nil {
				ready++
			}
			cn.mu.Unlock()
		}
		if len(idle) == n && ready == n {
			return idle[0]
		}
	}
	t.Fatalf("the pool never held %d idle connections with data connections made ahead", n)
	return nil
}

// A chain of N ranged reads, each closed early, costs each read one round
// trip on the control connection: REST and RETR in one write, on a data
// connection made ahead. Closing a read cut short does not wait for the
// server's 426, and the connection is made ready for the next read
// (426, then EPSV) while nobody waits for it.
func TestChainOfRangedReads(t *testing.T) {
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	w, c, gate := gatedFile(t, data)
	ctx := context.Background()

	const hops = 8
	var want []string
	for i := range hops {
		off := int64(i+1) * 2880 * 40
		rc, err := c.ReadAt(ctx, "/f.fits", off)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2880)
		if _, err := io.ReadFull(rc, buf); err != nil {
			t.Fatal(err)
		}
		if string(buf) != string(data[off:off+2880]) {
			t.Fatalf("hop %d: wrong bytes", i)
		}
		// The server's reply to the cut-short transfer is held back:
		// Close must not wait for it.
		gate.close()
		closed := make(chan error, 1)
		go func() { closed <- rc.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("hop %d: close: %v", i, err)
			}
		case <-time.After(time.Minute):
			gate.open()
			t.Fatalf("hop %d: Close waited for the server's reply to a transfer cut short", i)
		}
		gate.open()
		want = append(want, fmt.Sprintf("REST %d", off), "RETR /f.fits", "EPSV")
	}
	idleConn(t, c, 1) // the last EPSV was answered
	got := w.waitFor(t, "EPSV")
	if !slices.Equal(got, want) {
		t.Errorf("the server received\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if st := c.Stats(); st.Dials != 1 || st.ReadyUsed != hops || st.Discarded != 0 {
		t.Errorf("dials %d, reads on data connections made ahead %d, discarded %d; want 1, %d, 0",
			st.Dials, st.ReadyUsed, st.Discarded, hops)
	}
}
