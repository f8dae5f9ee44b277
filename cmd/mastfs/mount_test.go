package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mastfs/cmd/internal/mountinfo"
	"mastfs/ftps/ftpstest"
)

// binary is the mastfs program built for these tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mastfs-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mastfs")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build mastfs: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireFUSE stops a test that cannot mount: loudly under CI.
func requireFUSE(t *testing.T) {
	t.Helper()
	var why string
	if _, err := os.Stat("/dev/fuse"); err != nil {
		why = "no /dev/fuse"
	} else if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			why = "not root and no fusermount3 (apt-get install fuse3)"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot mount: %s", why)
	}
	t.Skipf("cannot mount here: %s", why)
}

// mount is one running mastfs mount process.
type mount struct {
	dir      string // the mount point
	cacheDir string
	logFile  string
	cmd      *exec.Cmd
	done     chan error
	spec     mountSpec // how it was started
}

// mountSpec says how a test mounts: the server, and what differs from a
// fresh mount with a mount point, cache and log of its own.
type mountSpec struct {
	host     string
	port     int
	caFile   string // "" to trust the system roots
	implicit bool   // implicit TLS
	args     []string

	dir, cacheDir, logFile string               // default: new ones in a temporary directory
	stdin                  string               // the process's standard input
	env                    []string             // added to the process's environment
	bin                    string               // default: the binary built for these tests
	attr                   *syscall.SysProcAttr // e.g. the credentials of another user
}

// serverSpec is a fresh mount of s with args.
func serverSpec(s *ftpstest.Server, args ...string) mountSpec {
	return mountSpec{host: s.Host, port: s.Port, caFile: s.CAFile, implicit: s.Implicit, args: args}
}

// startMount runs mastfs mount against s and waits until the kernel has
// the mount. It is unmounted when the test ends, even on failure.
func startMount(t *testing.T, s *ftpstest.Server, stdin string, args ...string) *mount {
	t.Helper()
	sp := serverSpec(s, args...)
	sp.stdin = stdin
	return startMastfs(t, sp)
}

// startMastfs is how every test starts a mount: it runs mastfs mount as sp
// says and waits until the kernel has the mount. It is unmounted when the
// test ends, even on failure.
func startMastfs(t *testing.T, sp mountSpec) *mount {
	t.Helper()
	requireFUSE(t)
	sp.fill(t)
	m := &mount{dir: sp.dir, cacheDir: sp.cacheDir, logFile: sp.logFile, spec: sp}
	m.cmd = sp.command()
	out, err := os.Create(m.logFile + ".out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	m.cmd.Stdout, m.cmd.Stderr = out, out
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m.done = make(chan error, 1)
	go func() { m.done <- m.cmd.Wait() }()
	t.Cleanup(func() { m.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for !mountinfo.Mounted(m.dir) {
		select {
		case err := <-m.done:
			m.done <- err
			t.Fatalf("mastfs exited before mounting: %v\n%s", err, m.log(t))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("not mounted after 30s\n%s", m.log(t))
		}
	}
	return m
}

// fill gives sp a mount point, cache and log of its own where it has none.
func (sp *mountSpec) fill(t *testing.T) {
	t.Helper()
	if sp.dir != "" && sp.cacheDir != "" && sp.logFile != "" {
		return
	}
	base := t.TempDir()
	if sp.dir == "" {
		sp.dir = filepath.Join(base, "mnt")
		if err := os.Mkdir(sp.dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if sp.cacheDir == "" {
		sp.cacheDir = filepath.Join(base, "cache")
	}
	if sp.logFile == "" {
		sp.logFile = filepath.Join(base, "mastfs.log")
	}
}

// command is the mastfs mount process sp describes, not yet started.
func (sp *mountSpec) command() *exec.Cmd {
	bin := sp.bin
	if bin == "" {
		bin = binary
	}
	args := []string{"mount", "--host", sp.host, "--port", strconv.Itoa(sp.port),
		"--cache-dir", sp.cacheDir, "--log-file", sp.logFile, "-v"}
	if sp.caFile != "" {
		args = append(args, "--ca-file", sp.caFile)
	}
	if sp.implicit {
		args = append(args, "--tls", "implicit")
	}
	cmd := exec.Command(bin, append(append(args, sp.args...), sp.dir)...)
	cmd.SysProcAttr = sp.attr
	cmd.Stdin = strings.NewReader(sp.stdin)
	if sp.env != nil {
		cmd.Env = append(os.Environ(), sp.env...)
	}
	return cmd
}

// mountFails runs mastfs mount as sp says, for a mount that must fail: it
// returns the exit code and what the process printed, and fails the test
// if the mount appears or the process is still running after a minute.
func mountFails(t *testing.T, sp *mountSpec) (int, string) {
	t.Helper()
	requireFUSE(t)
	sp.fill(t)
	t.Cleanup(func() {
		if mountinfo.Mounted(sp.dir) {
			_ = syscall.Unmount(sp.dir, syscall.MNT_DETACH)
		}
	})
	cmd := sp.command()
	var out ftpstest.LogBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("mastfs mount still running after a minute (mounted: %v)\n%s", mountinfo.Mounted(sp.dir), out.String())
	}
	if mountinfo.Mounted(sp.dir) {
		t.Fatalf("mounted, yet the mount was to fail\n%s", out.String())
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// remount starts mastfs again on the same server, mount point, cache and
// log, with args instead of the first mount's, and waits until the new
// mount answers: a dead one left on the mount point is in the mount table
// too.
func (m *mount) remount(t *testing.T, args ...string) *mount {
	t.Helper()
	sp := m.spec
	sp.args, sp.stdin = args, ""
	m2 := startMastfs(t, sp)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, err := os.Stat(m2.dir)
		if err == nil && mountinfo.Mounted(m2.dir) {
			return m2
		}
		if time.Now().After(deadline) || !m2.alive() {
			t.Fatalf("remount on %s: %v\n%s", m2.dir, err, m2.log(t))
		}
	}
}

// stop unmounts with SIGTERM, as a user's Ctrl-C would, and makes sure.
func (m *mount) stop(t *testing.T) error {
	if m.cmd.Process == nil {
		return nil
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-m.done:
		m.done <- err
	case <-time.After(30 * time.Second):
		err = fmt.Errorf("mastfs did not exit within 30s of SIGTERM; its goroutines:\n%s", m.dumpGoroutines())
	}
	if mountinfo.Mounted(m.dir) {
		_ = syscall.Unmount(m.dir, syscall.MNT_DETACH)
		if err == nil {
			err = errors.New("still mounted after mastfs exited")
		}
	}
	return err
}

// dumpGoroutines makes a mount that does not exit print its goroutines
// (the Go runtime's answer to SIGQUIT), kills it if that fails, and
// returns the end of what it printed, to say where it hung.
func (m *mount) dumpGoroutines() string {
	_ = m.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case err := <-m.done:
		m.done <- err
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
	}
	o, _ := os.ReadFile(m.logFile + ".out")
	const keep = 64 << 10
	if len(o) > keep {
		o = o[len(o)-keep:]
	}
	return string(o)
}

// log is what the mount logged, and printed to its stdout and stderr.
func (m *mount) log(t *testing.T) string {
	b, _ := os.ReadFile(m.logFile)
	o, _ := os.ReadFile(m.logFile + ".out")
	return string(b) + string(o)
}

func sha(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// walkMount returns every path under dir, relative, with its Lstat info.
func walkMount(t *testing.T, dir string) map[string]iofs.FileInfo {
	t.Helper()
	got := map[string]iofs.FileInfo{}
	err := filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, iofs.ErrPermission) {
				return nil // a directory we may not list: checked elsewhere
			}
			return err
		}
		if p == dir {
			return nil
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)] = info
		return nil
	})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	return got
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
