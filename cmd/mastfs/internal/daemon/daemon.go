// Package daemon detaches a mount from the terminal that started it: the
// program runs again in a session of its own, and the parent waits until
// the child says whether it mounted, so its exit status tells.
package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"mastfs/cmd/mastfs/internal/secret"
)

// childEnv marks the detached child.
const childEnv = "MASTFS_DAEMON_CHILD"

// readyWait bounds the wait for the child's answer.
const readyWait = 2 * time.Minute

// IsChild reports whether this process is a detached child.
func IsChild() bool { return os.Getenv(childEnv) != "" }

// Start runs this program again with args, detached, writes secret (if
// any) as the first line of its standard input, and waits until it reports
// on its ready pipe; it returns the child's process ID. A password so
// travels neither in the child's arguments nor in its environment. The
// child does not inherit $NOTIFY_SOCKET: telling systemd is the parent's
// part, as the process systemd started.
func Start(args []string, secret string) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	readR, readyW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer readR.Close()
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(scrubEnv(os.Environ()), childEnv+"=1")
	cmd.Stdin = stdinR
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start background mount: %w", err)
	}
	readyW.Close()
	stdinR.Close()
	if secret != "" {
		_, _ = io.WriteString(stdinW, secret+"\n")
	}
	stdinW.Close()

	type answer struct {
		line string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		line, err := bufio.NewReader(readR).ReadString('\n')
		got <- answer{strings.TrimSpace(line), err}
	}()
	select {
	case a := <-got:
		if a.line == "ok" {
			pid := cmd.Process.Pid
			_ = cmd.Process.Release()
			return pid, nil
		}
		_ = cmd.Wait()
		if a.line == "" {
			return 0, errors.New("background mount exited before mounting; see its log")
		}
		return 0, errors.New(a.line)
	case <-time.After(readyWait):
		_ = cmd.Process.Kill()
		return 0, fmt.Errorf("background mount not ready after %v; stopped it", readyWait)
	}
}

// Ready is the detached child's side of the pipe: it says "ok" once
// mounted, or why it failed.
type Ready struct{ f *os.File }

// ReadyPipe returns the pipe on which a detached child reports, or nil
// when this process is not one.
func ReadyPipe() *Ready {
	if !IsChild() {
		return nil
	}
	os.Unsetenv(childEnv)
	return &Ready{os.NewFile(3, "ready")}
}

// Mounted tells the parent the mount is up.
func (r *Ready) Mounted() { r.say("ok") }

// Failed tells the parent why the mount failed.
func (r *Ready) Failed(err error) { r.say(err.Error()) }

func (r *Ready) say(line string) {
	if r.f == nil {
		return
	}
	fmt.Fprintln(r.f, strings.ReplaceAll(line, "\n", " "))
	r.f.Close()
	r.f = nil
}

// scrubEnv drops secrets, and systemd's notification socket, from an
// environment passed on to a child.
func scrubEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, secret.Env+"=") || strings.HasPrefix(kv, childEnv+"=") ||
			strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
