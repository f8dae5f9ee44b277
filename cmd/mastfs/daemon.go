package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// daemonEnv marks the detached child of mount --daemon.
const daemonEnv = "MASTFS_DAEMON_CHILD"

// daemonize starts this program again, detached, and waits until the child
// says whether it mounted. A password travels on the child's stdin, never in
// its arguments or environment.
func daemonize(m *mountFlags, args []string, log *slog.Logger) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	childArgs := append([]string{"mount"}, args...)
	var secret string
	if !isAnonymous(m.server.user) {
		if secret, err = m.server.password(os.Stdin); err != nil {
			return err
		}
		if !m.server.passwordStdin {
			childArgs = append([]string{"mount", "--password-stdin"}, args...)
		}
	}
	if m.logs.file == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			lf := filepath.Join(dir, "mastfs", "mastfs.log")
			if err := os.MkdirAll(filepath.Dir(lf), 0o700); err == nil {
				childArgs = append([]string{"mount", "--log-file", lf}, childArgs[1:]...)
				log.Info("logging to file", "file", lf)
			}
		}
	}

	readR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readR.Close()
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, childArgs...)
	cmd.Env = append(scrubEnv(os.Environ()), daemonEnv+"=1")
	cmd.Stdin = stdinR
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start background mount: %w", err)
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
			_ = cmd.Process.Release()
			return nil
		}
		_ = cmd.Wait()
		if a.line == "" {
			return errors.New("background mount exited before mounting; see its log")
		}
		return errors.New(a.line)
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		return errors.New("background mount not ready after 2m; stopped it")
	}
}

// daemonReady is the pipe on which the detached child reports "ok" or its
// error, or nil when this process is not such a child.
func daemonReady() io.WriteCloser {
	if os.Getenv(daemonEnv) == "" {
		return nil
	}
	os.Unsetenv(daemonEnv)
	return os.NewFile(3, "ready")
}

// scrubEnv drops secrets from an environment passed on to a child.
func scrubEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, "MASTFS_PASSWORD=") || strings.HasPrefix(kv, daemonEnv+"=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
