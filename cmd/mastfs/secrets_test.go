package main

import (
	"bytes"
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
	"mastfs/ftps/stagegen"
)

// Secrets and defaults: the password is never in argv, a child's
// environment, a log at any verbosity, or the cache; certificates are
// verified unless the user says otherwise; the cache is the user's alone;
// other local users are kept out unless asked for, with a warning.

// daemonPID finds the process that serves a --daemon mount of dir.
func daemonPID(t *testing.T, dir string) int {
	t.Helper()
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 2 && args[0] == binary && args[1] == "mount" && args[len(args)-1] == dir {
			return pid
		}
	}
	t.Fatalf("no mastfs process serves %s", dir)
	return 0
}

// TestSecretsNowhere: an account's mount, detached with --daemon and
// logging at debug level, its password given on stdin and then in the
// environment: the password shows in neither the daemon's argv nor its
// environment, nor in any log line, nor in the cache.
func TestSecretsNowhere(t *testing.T) {
	requireFUSE(t)
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	for _, how := range []string{"stdin", "env"} {
		t.Run(how, func(t *testing.T) {
			sp := serverSpec(s, "--daemon", "--debug-fuse", "--user", s.User)
			if how == "stdin" {
				sp.args = append(sp.args, "--password-stdin")
				sp.stdin = s.Password + "\n"
			} else {
				sp.env = []string{"MASTFS_PASSWORD=" + s.Password}
			}
			sp.fill(t)
			mnt, cacheDir, logFile := sp.dir, sp.cacheDir, sp.logFile
			cmd := sp.command()
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			t.Cleanup(func() {
				if mountinfo.Mounted(mnt) {
					_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
				}
			})
			if err := cmd.Run(); err != nil {
				t.Fatalf("mount --daemon: %v\n%s", err, out.String())
			}
			if !mountinfo.Mounted(mnt) {
				t.Fatal("mount --daemon returned before the mount was there")
			}
			pid := daemonPID(t, mnt)
			if got := sha(t, filepath.Join(mnt, s.Stage.UserFile)); got == "" {
				t.Fatal("no bytes")
			}
			for _, f := range []string{"cmdline", "environ"} {
				b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), f))
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(b, []byte(s.Password)) {
					t.Errorf("password in the daemon's /proc/%d/%s", pid, f)
				}
			}
			if err := exec.Command(binary, "unmount", mnt).Run(); err != nil {
				t.Fatalf("unmount: %v", err)
			}
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
				if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err != nil {
					break
				}
				if time.Now().After(deadline) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					t.Fatal("the daemon did not exit within a minute of its unmount")
				}
			}
			log, _ := os.ReadFile(logFile)
			if !bytes.Contains(log, []byte("level=DEBUG")) || !bytes.Contains(log, []byte("connected")) {
				t.Fatalf("the daemon's log is not at debug level:\n%s", lastLogLines(string(log), 10))
			}
			for name, b := range map[string][]byte{"log": log, "output": out.Bytes()} {
				if bytes.Contains(b, []byte(s.Password)) {
					t.Errorf("password in the %s", name)
				}
			}
			noSecretIn(t, cacheDir, s.Password)
		})
	}
}

// noSecretIn fails the test if any file under dir holds secret.
func noSecretIn(t *testing.T, dir, secret string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("password in cache file %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCertificateVerifiedByDefault: without --ca-file, a server whose
// certificate no system root signed is refused, and mount says why and
// what to do, before anything is mounted.
func TestCertificateVerifiedByDefault(t *testing.T) {
	requireFUSE(t)
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	sp := serverSpec(s)
	sp.caFile = "" // trust the system roots only
	code, msg := mountFails(t, &sp)
	if code != exitFailure {
		t.Fatalf("mount against an untrusted certificate: exit %d, want %d\n%s", code, exitFailure, msg)
	}
	t.Logf("%s", strings.TrimSpace(msg))
	for _, want := range []string{"certificate", "--ca-file"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message does not mention %q:\n%s", want, msg)
		}
	}
}

// TestCachePermissions: every directory of the cache is 0700 and every
// file 0600, the log file too.
func TestCachePermissions(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	m := startMount(t, s, "", "--remote-dir", "/"+stagegen.AnonDir)
	sha(t, filepath.Join(m.dir, filepath.Base(stagegen.HSTFile)))
	if _, err := os.ReadDir(filepath.Join(m.dir, "nested")); err != nil {
		t.Fatal(err)
	}
	_ = m.stop(t)
	files := 0
	err := filepath.WalkDir(m.cacheDir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := iofs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700 | iofs.ModeDir
		} else {
			files++
		}
		if info.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, info.Mode(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 {
		t.Fatalf("only %d files in the cache", files)
	}
	if info, err := os.Stat(m.logFile); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("log file: %v, %v; want mode 0600", info.Mode(), err)
	}
}

// superOptions returns the file-system options the kernel shows for the
// mount at dir.
func superOptions(t *testing.T, dir string) string {
	t.Helper()
	m, ok := mountinfo.At(dir)
	if !ok {
		t.Fatalf("%s not in the mount table", dir)
	}
	return m.SuperOptions
}

// TestAllowOtherOffByDefault: a mount lets only its user in unless
// --allow-other is given, and then it warns that other local users can
// read the mount.
func TestAllowOtherOffByDefault(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	m := startMount(t, s, "")
	if opts := superOptions(t, m.dir); strings.Contains(opts, "allow_other") {
		t.Errorf("default mount has allow_other: %s", opts)
	}
	if strings.Contains(m.log(t), "allow-other") {
		t.Error("default mount warns about --allow-other")
	}
	m2 := startMount(t, s, "", "--allow-other")
	if opts := superOptions(t, m2.dir); !strings.Contains(opts, "allow_other") {
		t.Errorf("--allow-other mount lacks allow_other: %s", opts)
	}
	m2.waitLog(t, "every local user can read this mount", 30*time.Second)
}

// TestWrongPasswordRefused: a password the server refuses fails the mount
// at once, saying so, with one login attempt and without echoing it.
func TestWrongPasswordRefused(t *testing.T) {
	requireFUSE(t)
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	const wrong = "not-the-password-4711"
	if err := s.ResetLogs(); err != nil {
		t.Fatal(err)
	}
	sp := serverSpec(s, "--user", s.User, "--password-stdin")
	sp.stdin = wrong + "\n"
	code, out := mountFails(t, &sp)
	if code != exitFailure {
		t.Fatalf("mount with a wrong password: exit %d, want %d\n%s", code, exitFailure, out)
	}
	if !strings.Contains(out, "login failed for "+s.User) {
		t.Errorf("message does not say the login failed:\n%s", out)
	}
	if strings.Contains(out, wrong) {
		t.Error("the wrong password was echoed")
	}
	if b, err := os.ReadFile(sp.logFile); err != nil || strings.Contains(string(b), wrong) {
		t.Errorf("log file: %v, or it holds the wrong password", err)
	}
	if cmds, err := s.Commands(); err == nil {
		n := 0
		for _, c := range cmds {
			if strings.HasPrefix(strings.ToUpper(c), "PASS") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d login attempts, want 1", n)
		}
	}
}
