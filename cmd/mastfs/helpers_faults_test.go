package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mastfs/ftps/ftpstest"
	"mastfs/ftps/ftpstest/netproxy"
	"mastfs/ftps/stagegen"
)

// Helpers of the fault, hostile-server, process and secret tests.

// mountBehindProxy mounts s through p, verifying its certificate there.
func mountBehindProxy(t *testing.T, s *ftpstest.Server, args ...string) *mount {
	t.Helper()
	return startMastfs(t, mountSpec{host: ftpstest.ProxyHost, port: s.Port, caFile: s.CAFile, args: args})
}

// proxiedStage starts vsftpd behind a fault proxy, serving a small stage.
func proxiedStage(t *testing.T, pc netproxy.Config) (*ftpstest.Server, *netproxy.Proxy) {
	t.Helper()
	st := ftpstest.NewStage(t, stagegen.StageOptions{LargeSize: 16 << 20, ManyFiles: 300})
	return ftpstest.StartBehindProxy(t, ftpstest.Options{Stage: st}, pc)
}

// fds counts what a process holds open: sockets, pipes, and the rest
// (files, /dev/fuse, event descriptors).
type fds struct{ sockets, pipes, files int }

func fdCount(t *testing.T, pid int) fds {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("count descriptors: %v", err)
	}
	var n fds
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		switch {
		case err != nil: // closed meanwhile
		case strings.HasPrefix(target, "socket:"):
			n.sockets++
		case strings.HasPrefix(target, "pipe:"):
			n.pipes++
		default:
			n.files++
		}
	}
	return n
}

// fdBudget checks that a mount holds no more files than it did at rest,
// no more sockets than its pool allows (a control and a data connection
// per allowed connection) and no more pipes than go-fuse's splice pool
// keeps for the requests the kernel sends at once. Anything beyond is a
// leak. It waits a moment for connections being closed.
func fdBudget(t *testing.T, m *mount, rest, maxConns int) {
	t.Helper()
	const splicePipes = 2 * 64 // a pair per request in flight; the mount allows 64 at once
	pid := m.cmd.Process.Pid
	var n fds
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		n = fdCount(t, pid)
		if n.sockets <= 2*maxConns && n.files <= rest && n.pipes <= splicePipes {
			return
		}
	}
	t.Errorf("mastfs holds %+v descriptors; want at most %d sockets, %d files and %d pipes:\n%s",
		n, 2*maxConns, rest, splicePipes, fdList(pid))
}

// restFDs is how many files (not sockets or pipes) a mount holds once it
// has served a read and is idle.
func restFDs(t *testing.T, m *mount) int {
	t.Helper()
	return fdCount(t, m.cmd.Process.Pid).files
}

// fdList names what process pid holds open, one descriptor a line.
func fdList(pid int) string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		fmt.Fprintf(&b, "%s -> %s\n", e.Name(), target)
	}
	return b.String()
}

// timed runs f and returns its error and how long it took; a call that
// does not return within limit (a freeze) fails the test at once.
func timed(t *testing.T, what string, limit time.Duration, f func() error) (time.Duration, error) {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f() }()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(limit):
		t.Fatalf("%s: no answer after %v", what, limit)
		return 0, nil
	}
}

// isEIO reports whether err is an EIO from the kernel.
func isEIO(err error) bool { return errors.Is(err, syscall.EIO) }

// alive reports whether the mount's process is still running.
func (m *mount) alive() bool {
	select {
	case err := <-m.done:
		m.done <- err
		return false
	default:
		return true
	}
}

// waitLog polls the mount's log until it holds want, or fails after limit.
func (m *mount) waitLog(t *testing.T, want string, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(50 * time.Millisecond) {
		if strings.Contains(m.log(t), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log has no %q after %v:\n%s", want, limit, lastLogLines(m.log(t), 30))
		}
	}
}

func lastLogLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// settledSent waits for the server's transfer log to settle (the same
// count for a second: a session writes its line as its transfer ends,
// late on a loaded machine) and returns the bytes it has sent so far.
func settledSent(t *testing.T, s *ftpstest.Server) int64 {
	t.Helper()
	var last int64 = -1
	same := 0
	for range 120 {
		n, err := s.SentBytes()
		if err != nil {
			t.Fatal(err)
		}
		if n != last {
			last, same = n, 0
		} else if same++; same == 4 {
			return n
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("the server's transfer log still grows after 30s: %d bytes", last)
	return last
}

// dropPages drops what the kernel caches of a file's pages, so that the
// next read reaches mastfs.
func dropPages(t *testing.T, p string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const fadvDontNeed = 4
	if _, _, e := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0); e != 0 {
		t.Fatalf("fadvise %s: %v", p, e)
	}
}

// sessionsEnded waits until the server has no session left (vsftpd forks
// one process per connection and it writes its transfer log lines before
// it exits), so that a mount that has stopped has all its transfers in
// the log, and returns the bytes sent so far.
func sessionsEnded(t *testing.T, s *ftpstest.Server) int64 {
	t.Helper()
	pid := s.PID()
	if pid == 0 {
		t.Fatal("the server is not running")
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		n := childProcesses(t, pid)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still has %d sessions a minute after its client went", s, n)
		}
	}
	n, err := s.SentBytes()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// childProcesses counts the processes whose parent is pid.
func childProcesses(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n++
		}
	}
	return n
}
