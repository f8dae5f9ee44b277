package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"mastfs/cmd/internal/mountinfo"
	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// TestMountAsOrdinaryUser: an ordinary user mounts through fusermount3,
// reads a file, and SIGTERM unmounts.
func TestMountAsOrdinaryUser(t *testing.T) {
	requireFUSE(t)
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root to become an ordinary user (nobody)")
		}
		t.Skip("needs root to become an ordinary user (nobody)")
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("fusermount3 missing: apt-get install fuse3 (make deps)")
		}
		t.Skip("fusermount3 missing: apt-get install fuse3")
	}
	const uid, gid = 65534, 65534 // nobody, nogroup
	// Debian's udev makes /dev/fuse crw-rw-rw-; containers often leave it
	// root-only. Open it up for the test and put it back.
	if st, err := os.Stat("/dev/fuse"); err == nil && st.Mode().Perm()&0o006 != 0o006 {
		if err := os.Chmod("/dev/fuse", 0o666); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod("/dev/fuse", st.Mode().Perm()) })
	}
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})

	base, err := os.MkdirTemp("", "mastfs-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	home := filepath.Join(base, "home")
	mnt := filepath.Join(home, "mnt")
	for _, d := range []string{home, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(home, "ca.pem")
	if err := os.WriteFile(caFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "mastfs")
	if out, err := exec.Command("cp", binary, bin).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := filepath.Walk(home, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	}); err != nil {
		t.Fatal(err)
	}
	asNobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}

	m := startMastfs(t, mountSpec{host: s.Host, port: s.Port, caFile: caFile, dir: mnt,
		cacheDir: filepath.Join(home, "cache"), logFile: filepath.Join(home, "mastfs.log"),
		bin: bin, attr: asNobody, args: []string{"--remote-dir", "/" + stagegen.AnonDir}})

	cat := exec.Command("sha256sum", filepath.Join(mnt, "jbk802010_flt.fits"))
	cat.SysProcAttr = asNobody
	out, err := cat.CombinedOutput()
	if err != nil {
		t.Fatalf("read as nobody: %v: %s\n%s", err, out, m.log(t))
	}
	f, _ := s.Stage.Lookup(stagegen.HSTFile)
	if !strings.HasPrefix(string(out), f.SHA256) {
		t.Errorf("sha256 as nobody: %s, want %s", out, f.SHA256)
	}
	if err := m.stop(t); err != nil {
		t.Fatalf("stop: %v\n%s", err, m.log(t))
	}
	if mountinfo.Mounted(mnt) {
		t.Error("still mounted after SIGTERM")
	}
}
