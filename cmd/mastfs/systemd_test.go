package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mastfs/cmd/internal/mountinfo"
	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// fakeSystemd is a notification socket as systemd makes one for a unit
// of Type=notify.
type fakeSystemd struct {
	name string
	conn *net.UnixConn
}

func newFakeSystemd(t *testing.T) *fakeSystemd {
	t.Helper()
	name := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &fakeSystemd{name: name, conn: c}
}

// next waits for the next notification, a generous while at most.
func (f *fakeSystemd) next(t *testing.T) string {
	t.Helper()
	_ = f.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	b := make([]byte, 4096)
	n, err := f.conn.Read(b)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(b[:n])
}

// TestSystemdNotify: run by systemd (Type=notify), mastfs mount says
// READY=1 once the mount is there, and STOPPING=1 when asked to unmount.
func TestSystemdNotify(t *testing.T) {
	privateRuntime(t)
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	sd := newFakeSystemd(t)
	sp := serverSpec(s, "--remote-dir", "/"+stagegen.AnonDir)
	sp.env = []string{"NOTIFY_SOCKET=" + sd.name}
	m := startMastfs(t, sp)
	got := sd.next(t)
	if !strings.HasPrefix(got, "READY=1\n") || !strings.Contains(got, "STATUS=mounted "+s.Host+"/"+stagegen.AnonDir) {
		t.Errorf("first notification %q, want READY=1 and the status", got)
	}
	if !mountinfo.Mounted(m.dir) {
		t.Error("READY=1 came, yet nothing is mounted")
	}
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := sd.next(t); got != "STOPPING=1" {
		t.Errorf("notification on SIGTERM %q, want STOPPING=1", got)
	}
	if err := m.stop(t); err != nil {
		t.Error(err)
	}
}

// TestSystemdNotifyDaemon: with --daemon, the process systemd started
// says READY=1 and names the detached child, which serves the mount, as
// MAINPID; the child itself does not see the socket.
func TestSystemdNotifyDaemon(t *testing.T) {
	requireFUSE(t)
	privateRuntime(t)
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	sd := newFakeSystemd(t)
	sp := serverSpec(s, "--remote-dir", "/"+stagegen.AnonDir, "--daemon")
	sp.env = []string{"NOTIFY_SOCKET=" + sd.name}
	sp.fill(t)
	t.Cleanup(func() {
		if mountinfo.Mounted(sp.dir) {
			_ = syscall.Unmount(sp.dir, syscall.MNT_DETACH)
		}
	})
	if out, err := sp.command().CombinedOutput(); err != nil {
		t.Fatalf("mount --daemon: %v\n%s", err, out)
	}
	r := statusOf(t, sp.dir)
	want := fmt.Sprintf("READY=1\nMAINPID=%d", r.PID)
	if got := sd.next(t); got != want {
		t.Errorf("notification %q, want %q", got, want)
	}
	mustRun(t, "unmount", sp.dir)
	for deadline := time.Now().Add(30 * time.Second); processAlive(r.PID); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the detached mount (pid %d) still runs 30s after unmount", r.PID)
		}
	}
	_ = sd.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := sd.conn.Read(make([]byte, 4096)); err == nil {
		t.Errorf("the detached child notified too (%d bytes): it should not see the socket", n)
	}
}
