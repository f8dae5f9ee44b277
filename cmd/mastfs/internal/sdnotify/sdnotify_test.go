package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// listen is a fake systemd: a unixgram socket whose datagrams the test reads.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatalf("read the notification: %v", err)
	}
	return string(b[:n])
}

func TestNotify(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), fmt.Sprintf("@mastfs-sdnotify-%d-%d", os.Getpid(), time.Now().UnixNano())} {
		c := listen(t, name)
		t.Setenv(Env, name)
		sent, err := Notify(Ready + "\nSTATUS=mounted")
		if !sent || err != nil {
			t.Fatalf("Notify to %s: %v, %v", name, sent, err)
		}
		if got := read(t, c); got != "READY=1\nSTATUS=mounted" {
			t.Errorf("%s received %q", name, got)
		}
	}
}

func TestNotifyOutsideSystemd(t *testing.T) {
	t.Setenv(Env, "")
	if sent, err := Notify(Ready); sent || err != nil {
		t.Errorf("Notify without %s: %v, %v; want nothing sent", Env, sent, err)
	}
	t.Setenv(Env, filepath.Join(t.TempDir(), "nobody-listens"))
	if sent, err := Notify(Ready); !sent || err == nil {
		t.Errorf("Notify to a missing socket: %v, %v; want an error", sent, err)
	}
}
