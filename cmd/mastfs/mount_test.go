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
}

// startMount runs mastfs mount against s and waits until the kernel has
// the mount. It is unmounted when the test ends, even on failure.
func startMount(t *testing.T, s *ftpstest.Server, stdin string, args ...string) *mount {
	t.Helper()
	requireFUSE(t)
	base := t.TempDir()
	m := &mount{
		dir:      filepath.Join(base, "mnt"),
		cacheDir: filepath.Join(base, "cache"),
		logFile:  filepath.Join(base, "mastfs.log"),
		done:     make(chan error, 1),
	}
	if err := os.Mkdir(m.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	all := []string{"mount", "--host", s.Host, "--port", fmt.Sprint(s.Port), "--ca-file", s.CAFile,
		"--cache-dir", m.cacheDir, "--log-file", m.logFile, "-v"}
	if s.Implicit {
		all = append(all, "--tls", "implicit")
	}
	all = append(all, args...)
	return m.start(t, stdin, append(all, m.dir))
}

func (m *mount) start(t *testing.T, stdin string, args []string) *mount {
	t.Helper()
	return m.startWith(t, stdin, args, nil)
}

// startWith starts the mount process, with credentials when attr says.
func (m *mount) startWith(t *testing.T, stdin string, args []string, attr *syscall.SysProcAttr) *mount {
	t.Helper()
	m.cmd = exec.Command(binary, args...)
	m.cmd.SysProcAttr = attr
	m.cmd.Stdin = strings.NewReader(stdin)
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
	case <-time.After(15 * time.Second):
		_ = m.cmd.Process.Kill()
		err = errors.New("mastfs did not exit within 15s of SIGTERM")
	}
	if mountinfo.Mounted(m.dir) {
		_ = syscall.Unmount(m.dir, syscall.MNT_DETACH)
		if err == nil {
			err = errors.New("still mounted after mastfs exited")
		}
	}
	return err
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

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func hexOf(b []byte) string { return hex.EncodeToString(b) }
