package ftps

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pipeServer is the server's end of a control connection made with
// net.Pipe: what the client sent, and replies written in the pieces given.
type pipeServer struct {
	conn net.Conn
	sent chan string
}

func newPipeCtl(t *testing.T) (*ctl, *pipeServer) {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	_ = client.SetDeadline(time.Now().Add(time.Minute)) // a reply never sorted fails, not hangs
	s := &pipeServer{conn: server, sent: make(chan string, 16)}
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := server.Read(buf)
			if err != nil {
				close(s.sent)
				return
			}
			s.sent <- string(buf[:n])
		}
	}()
	return &ctl{Conn: client}, s
}

// reply writes pieces one after another, as the server's replies arrive.
func (s *pipeServer) reply(pieces ...string) {
	go func() {
		for _, p := range pieces {
			if _, err := s.conn.Write([]byte(p)); err != nil {
				return
			}
		}
	}()
}

func (s *pipeServer) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-s.sent:
		if got != want {
			t.Fatalf("server got %q, want %q", got, want)
		}
	case <-time.After(time.Minute):
		t.Fatalf("server never got %q", want)
	}
}

// An EPSV written as a transfer ends is answered after the transfer's
// reply. The library reads through a buffer of its own, greedily, so
// replies are read whole while that EPSV's reply is owed: the library
// reads the transfer's reply and never the EPSV's, however the bytes
// arrive, and whatever it sends in between.
func TestCtlSortsOwedEPSVReply(t *testing.T) {
	const epsv = "229 Entering Extended Passive Mode (|||4242|)\r\n"
	for _, tc := range []struct {
		name    string
		pieces  []string // what the server sends after the EPSV
		between []string // commands the library sends after the transfer's reply, one reply read after each
		lib     []int    // the reply codes the library reads, in order
		port    string   // the port owedReply finds; "": none (the library took it)
		refused bool     // owedReply finds the EPSV refused
	}{
		{name: "one write", pieces: []string{"226 Transfer complete.\r\n" + epsv}, lib: []int{226}, port: "4242"},
		{name: "byte by byte", pieces: strings.SplitAfter("426 Failure writing network stream.\r\n"+epsv, ""),
			lib: []int{426}, port: "4242"},
		{name: "multi-line", pieces: []string{"226-Transfer done\r\n226-", "still\r\n226 ok\r\n229 Entering", " Extended Passive Mode (|||4242|)\r\n"},
			lib: []int{226}, port: "4242"},
		{name: "answered during the transfer", pieces: []string{epsv + "426 Failure writing network stream.\r\n"},
			lib: []int{426}, port: "4242"},
		{name: "refused during the transfer", pieces: []string{"500 Unknown command.\r\n", "150 Transfer aborted\r\n"},
			lib: []int{150}, refused: true},
		{name: "a command between", pieces: []string{"226 Transfer complete.\r\n", epsv + "250 Directory changed.\r\n"},
			between: []string{"CWD /a\r\n"}, lib: []int{226, 250}, port: "4242"},
		{name: "the library's own EPSV", pieces: []string{"226 Transfer complete.\r\n" + epsv},
			between: []string{"EPSV\r\n"}, lib: []int{226, 229}},
		{name: "a command, then the library's own EPSV", pieces: []string{"226 Transfer complete.\r\n", epsv + "250 Directory changed.\r\n"},
			between: []string{"CWD /a\r\n", "EPSV\r\n"}, lib: []int{226, 250, 229}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := newPipeCtl(t)
			if !c.owe() {
				t.Fatal("no EPSV owed")
			}
			s.expect(t, "EPSV\r\n")
			s.reply(tc.pieces...)
			lib := textproto.NewReader(bufio.NewReader(c)) // as greedy as the library's
			var got []int
			for i := range tc.lib {
				if i > 0 {
					cmd := tc.between[i-1]
					if _, err := c.Write([]byte(cmd)); err != nil {
						t.Fatal(err)
					}
					if cmd != "EPSV\r\n" {
						s.expect(t, cmd)
					}
				}
				code, msg, err := lib.ReadResponse(0)
				if err != nil {
					t.Fatalf("library's reply %d: %v", i, err)
				}
				got = append(got, code)
				if code == 229 && !strings.Contains(msg, "|||4242|") {
					t.Errorf("library's 229 says %q", msg)
				}
			}
			if !slices.Equal(got, tc.lib) {
				t.Errorf("the library read replies %v, want %v", got, tc.lib)
			}
			code, msg, _, err := c.owedReply()
			switch {
			case tc.refused:
				if err != nil || code != 500 {
					t.Errorf("owedReply gave %d %s, %v; want the refusal", code, msg, err)
				}
			case tc.port == "" && err == nil:
				t.Errorf("owedReply gave %d %s; the library took it", code, msg)
			case tc.port != "" && err != nil:
				t.Errorf("owedReply: %v", err)
			case tc.port != "":
				if p, err := epsvPort(msg); code != 229 || err != nil || p != tc.port {
					t.Errorf("owedReply gave %d %s", code, msg)
				}
			}
			// Whatever comes next is the library's again.
			s.reply("200 NOOP ok.\r\n")
			if code, _, err := lib.ReadResponse(0); code != 200 || err != nil {
				t.Errorf("next reply %d, %v; want 200", code, err)
			}
		})
	}
}

// replyLen finds the end of the first whole reply, or none.
func TestReplyLen(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"226 ok", 0},
		{"226 ok\r\n229 x\r\n", 8},
		{"226-a\r\n", 0},
		{"226-a\r\n 226 b\r\n", 0}, // a continuation line, not the last
		{"226-a\r\n226 b\r\nx", 14},
		{"22\r\n", 4}, // malformed: the library's parser says so
	} {
		if got := replyLen([]byte(tc.in)); got != tc.want {
			t.Errorf("replyLen(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// The next transfer's EPSV goes out as a transfer's data connection
// closes, without waiting for the transfer's last reply: with the
// server's replies held back, the server still receives it. That saves
// the connection a round trip between transfers, whether the transfer was
// cut short (426) or read to its end (226).
func TestEPSVWithTransferEnd(t *testing.T) {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 13)
	}
	w, c, gate := gatedFile(t, data)
	ctx := context.Background()
	for i, tc := range []struct {
		name string
		off  int64
		n    int // bytes read before Close; -1: to the end
	}{
		{"cut short", 2880 * 10, 2880},
		{"to the end", 1<<20 - 5000, -1},
		{"cut short again", 0, 100},
		{"whole file", 0, -1},
	} {
		rc, err := c.ReadAt(ctx, "/f.fits", tc.off)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []byte
		if tc.n < 0 {
			got, err = io.ReadAll(rc)
		} else {
			got = make([]byte, tc.n)
			_, err = io.ReadFull(rc, got)
		}
		if err != nil || !bytes.Equal(got, data[tc.off:tc.off+int64(len(got))]) ||
			(tc.n < 0 && tc.off+int64(len(got)) != int64(len(data))) {
			t.Fatalf("%s: read %d bytes, %v; not the file's", tc.name, len(got), err)
		}
		gate.close()
		closed := make(chan error, 1)
		go func() { closed <- rc.Close() }() // after EOF, Close waits for the 226
		want := []string{"RETR /f.fits", "EPSV"}
		if tc.off > 0 {
			want = slices.Insert(want, 0, "REST "+strconv.FormatInt(tc.off, 10))
		}
		sent := w.waitFor(t, "EPSV") // while the server's replies are held back
		gate.open()
		if err := <-closed; err != nil {
			t.Errorf("%s: close: %v", tc.name, err)
		}
		if !slices.Equal(sent, want) {
			t.Errorf("%s: the server received %q, want %q", tc.name, sent, want)
		}
		idleConn(t, c, 1)
		if st, early := c.Stats(), c.stats.earlyEPSV.Load(); st.Dials != 1 || st.Discarded != 0 ||
			st.ReadyUsed != int64(i+1) || early != int64(i+1) {
			t.Errorf("%s: dials %d, discarded %d, reads on data connections made ahead %d, EPSVs sent with a transfer's end %d; want 1, 0, %d, %d",
				tc.name, st.Dials, st.Discarded, st.ReadyUsed, early, i+1, i+1)
		}
	}
}

// gatedFile serves data as /f.fits to a client of one control connection,
// logged in and idle, whose replies from the server can be held back
// (the gate is open). The login's commands are taken from the server's log.
func gatedFile(t *testing.T, data []byte) (*wireServer, *Client, *gatedConn) {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f.fits"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	w := startWireServer(t, root, nil)
	cfg := w.cfg
	cfg.KeepAlive = time.Hour // no NOOP on the wire
	c := pingedClient(t, cfg)
	cn := idleConn(t, c, 1)
	gate := &gatedConn{Conn: cn.ctl.Conn}
	cn.ctl.Conn = gate
	w.waitFor(t, "EPSV") // the login's commands, checked by TestWireSequence
	return w, c, gate
}

// pingedClient is a client of one control connection for cfg, logged in,
// closed when the test ends.
func pingedClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	cfg.MaxConns = 1
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// replyLen reads server output: whatever the bytes, it ends a reply at the
// end of a line within them, and a reply it ends is one the library's
// parser reads whole.
func FuzzReplyLen(f *testing.F) {
	for _, s := range []string{"226 ok\r\n", "226-a\r\n226 b\r\n229 x\r\n", "22\r\n", "\n", "226-a\r\n 226 b\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n := replyLen(b)
		if n == 0 {
			return
		}
		if n > len(b) || b[n-1] != '\n' {
			t.Fatalf("replyLen(%q) = %d", b, n)
		}
		if replyLen(b[:n]) != n {
			t.Fatalf("replyLen(%q) = %d, but %d for its first %d bytes", b, n, replyLen(b[:n]), n)
		}
	})
}
