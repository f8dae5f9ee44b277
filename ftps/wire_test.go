package ftps

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"testing"
)

func TestEPSVPort(t *testing.T) {
	for _, tc := range []struct {
		msg, port string
	}{
		{"Entering Extended Passive Mode (|||40001|)", "40001"},
		{"Entering Extended Passive Mode (!!!21!)", "21"},
		{"EPSV ok (|||65535|)", "65535"},
		{"Entering Extended Passive Mode (|||0|)", ""},
		{"Entering Extended Passive Mode (|||65536|)", ""},
		{"Entering Extended Passive Mode (|||x|)", ""},
		{"Entering Extended Passive Mode ()", ""},
		{"Entering Extended Passive Mode", ""},
		{"(|||1|2|)", ""},
	} {
		port, err := epsvPort(tc.msg)
		if port != tc.port || (err == nil) != (tc.port != "") {
			t.Errorf("epsvPort(%q) = %q, %v; want %q", tc.msg, port, err, tc.port)
		}
	}
}

// The library's EPSV is answered from the kept reply, once; other commands
// go to the server, and one that replaces the passive listener drops the
// kept reply.
func TestCtlAnswersEPSV(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	sent := make(chan []byte, 8)
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := server.Read(buf)
			if err != nil {
				close(sent)
				return
			}
			sent <- bytes.Clone(buf[:n])
		}
	}()
	c := &ctl{Conn: client, epsv: []byte("229 Entering Extended Passive Mode (|||4242|)\r\n")}
	if _, err := c.Write([]byte("NOOP\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := <-sent; string(got) != "NOOP\r\n" {
		t.Fatalf("server got %q", got)
	}
	if _, err := c.Write([]byte("EPSV\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 128)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "229 Entering Extended Passive Mode (|||4242|)\r\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	// The reply is used up: the next EPSV goes to the server.
	c.Write([]byte("EPSV\r\n"))
	if got := <-sent; string(got) != "EPSV\r\n" {
		t.Fatalf("server got %q", got)
	}
	c.epsv = []byte("229 (|||1|)\r\n")
	c.Write([]byte("PASV\r\n"))
	if got := <-sent; string(got) != "PASV\r\n" || c.epsv != nil {
		t.Fatalf("server got %q; kept reply %q", got, c.epsv)
	}
}

// A REST waits for the transfer command and goes with it; its reply is
// checked, and a refusal fails the read rather than let a transfer from
// offset 0 through.
func TestCtlHoldsREST(t *testing.T) {
	for _, tc := range []struct {
		reply string
		ok    bool
	}{{"350 Restart position accepted (100).\r\n", true}, {"501 REST not understood\r\n", false}} {
		client, server := net.Pipe()
		c := &ctl{Conn: client, client: &Client{log: slog.New(slog.DiscardHandler)}}
		if _, err := c.Write([]byte("REST 100\r\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 128)
		n, err := c.Read(buf)
		if err != nil || !bytes.HasPrefix(buf[:n], []byte("350 ")) {
			t.Fatalf("REST answered %q, %v", buf[:n], err)
		}
		go func() {
			got := make([]byte, 128)
			n, _ := server.Read(got)
			if string(got[:n]) != "REST 100\r\nRETR f\r\n" {
				t.Errorf("server got %q in one write", got[:n])
			}
			server.Write([]byte(tc.reply + "150 Opening data connection.\r\n"))
		}()
		if _, err := c.Write([]byte("RETR f\r\n")); err != nil {
			t.Fatal(err)
		}
		n, err = c.Read(buf)
		switch {
		case tc.ok && (err != nil || string(buf[:n]) != "150 Opening data connection.\r\n"):
			t.Errorf("after an accepted REST, read %q, %v", buf[:n], err)
		case !tc.ok && !errors.Is(err, errRestRefused):
			t.Errorf("after a refused REST, read %q, %v", buf[:n], err)
		case !tc.ok && !c.client.noPipeline.Load():
			t.Errorf("a refused REST left REST going ahead")
		}
		client.Close()
		server.Close()
	}
}
