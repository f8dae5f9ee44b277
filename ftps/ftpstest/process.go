package ftpstest

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is one run of the server binary; done closes when it is reaped.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, valid after done
}

// launch starts one process and waits until it greets a client.
func (s *Server) launch() error {
	out, err := os.OpenFile(s.Output, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := s.newCmd()
	cmd.Stdout, cmd.Stderr = out, out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// A process group of its own, so that Stop reaches the per-session
	// processes the server forks; and no orphaned listener if the test
	// binary dies.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := s.waitReady(p, 10*time.Second); err != nil {
		p.stop()
		return fmt.Errorf("%s on port %d: %w; output: %s", s.Impl, s.Port, err, tail(s.Output, 800))
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// waitReady polls until the server sends its 220 greeting (over TLS when
// implicit, which also proves the certificate), or the process exits.
func (s *Server) waitReady(p *process, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited before accepting connections: %v", p.err)
		default:
		}
		if last = s.greet(); last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %v", limit, last)
}

func (s *Server) greet() error {
	conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if s.Implicit {
		tc := tls.Client(conn, &tls.Config{RootCAs: s.RootCAs, ServerName: s.Host})
		if err := tc.Handshake(); err != nil {
			return err
		}
		conn = tc
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "220") {
		return fmt.Errorf("greeting %q", strings.TrimSpace(line))
	}
	// Hang up without a command, so the command log starts empty.
	return nil
}

// stop kills the server and everything it forked. vsftpd's session
// processes leave the process group (they become session leaders), so the
// tree is found by parent pid: each process found is stopped (SIGSTOP) so
// it forks no more, the search repeats until nothing new turns up, and then
// all of them are killed together.
func (p *process) stop() {
	root := p.cmd.Process.Pid
	found := map[int]bool{root: true}
	_ = syscall.Kill(root, syscall.SIGSTOP)
	for round := 0; round < 50; round++ {
		added := false
		for _, pid := range descendants(root, found) {
			if !found[pid] {
				found[pid] = true
				added = true
				_ = syscall.Kill(pid, syscall.SIGSTOP)
			}
		}
		if !added {
			break
		}
	}
	for pid := range found {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	// Wait until the killed processes are gone, so a restart finds the
	// ports free and a test finds no stray session.
	for i := 0; i < 100; i++ {
		alive := false
		for pid := range found {
			if pid != root && processAlive(pid) {
				alive = true
			}
		}
		if !alive {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procEntry is what stop needs from /proc/PID/stat.
type procEntry struct{ pid, ppid, pgrp int }

// procTable lists live (non-zombie) processes.
func procTable() []procEntry {
	ents, _ := os.ReadDir("/proc")
	var out []procEntry
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// After the parenthesised command: state ppid pgrp ...
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgrp, _ := strconv.Atoi(f[2])
		out = append(out, procEntry{pid, ppid, pgrp})
	}
	return out
}

// descendants lists the processes whose parent is in known, or whose
// process group is root's, from one look at /proc.
func descendants(root int, known map[int]bool) []int {
	var out []int
	for _, e := range procTable() {
		if (known[e.ppid] || e.pgrp == root) && !known[e.pid] {
			out = append(out, e.pid)
		}
	}
	return out
}

// sessionPIDs lists the live processes a server runs: the listener and
// every descendant.
func sessionPIDs(root int) []int {
	known := map[int]bool{root: true}
	for {
		more := descendants(root, known)
		if len(more) == 0 {
			break
		}
		for _, pid := range more {
			known[pid] = true
		}
	}
	var out []int
	for pid := range known {
		if processAlive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}
