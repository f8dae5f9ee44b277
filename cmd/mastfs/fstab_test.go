package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"mastfs/cmd/internal/mountinfo"
	"mastfs/cmd/mastfs/internal/status"
	"mastfs/ftps/ftpstest"
)

// helperScript runs in a mount namespace of its own. mount(8) runs helpers
// without PATH, so mount.fuse3's /bin/sh finds mastfs only in the default
// places: the test's binary is bind-mounted over /usr/local/sbin (or bin),
// seen in this namespace alone. It mounts as an fstab line would, lists the mount,
// asks its status, unmounts with umount(8), and waits for mastfs to exit.
const helperScript = `set -eu
for d in /usr/local/sbin /usr/local/bin; do
	if [ -d "$d" ]; then mount --bind "$BIN" "$d"; break; fi
done
trap 'umount -l "$MP" 2>/dev/null || true' EXIT
mount -t fuse.mastfs "$SRC" "$MP" -o "$OPTS"
ls "$MP" > "$OUT/ls.txt"
"$BIN/mastfs" status --json "$MP" > "$OUT/status.json"
pid=$(sed -n 's/^  "pid": \([0-9]*\),$/\1/p' "$OUT/status.json")
umount "$MP"
trap - EXIT
for i in $(seq 1 600); do
	kill -0 "$pid" 2>/dev/null || exit 0
	sleep 0.1
done
echo "mastfs (pid $pid) still running 60s after umount" >&2
exit 1
`

// TestMountTypeFuseMastfs: "mount -t fuse.mastfs SOURCE DIR -o OPTIONS", as
// an fstab line does it through mount.fuse3: the options map to flags
// (_netdev, x-systemd.automount and nofail pass), the password comes from a
// file, mastfs detaches once mounted, and umount(8) ends it.
func TestMountTypeFuseMastfs(t *testing.T) {
	requireFUSE(t)
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("mount(8) of a FUSE type needs root")
		}
		t.Skip("mount(8) of a FUSE type needs root")
	}
	for _, tool := range []string{"/sbin/mount.fuse3", "/usr/bin/unshare"} {
		if _, err := os.Stat(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s missing: apt-get install fuse3 util-linux", tool)
			}
			t.Skipf("%s missing: apt-get install fuse3 util-linux", tool)
		}
	}
	privateRuntime(t)
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	dir := t.TempDir()
	mp, out := filepath.Join(dir, "mnt"), filepath.Join(dir, "out")
	for _, d := range []string{mp, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(s.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "mastfs.log")
	opts := strings.Join([]string{"ca_file=" + s.CAFile, "cache_dir=" + filepath.Join(dir, "cache"),
		"log_file=" + logFile, "log_level=debug", "user=" + s.User, "password_file=" + pwFile,
		"_netdev", "x-systemd.automount", "nofail"}, ",")
	src := fmt.Sprintf("%s:%d/%s", s.Host, s.Port, s.Stage.UserDir)

	cmd := exec.Command("/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", helperScript)
	cmd.Env = append(os.Environ(), "BIN="+filepath.Dir(binary), "MP="+mp, "SRC="+src, "OPTS="+opts, "OUT="+out)
	output, err := cmd.CombinedOutput()
	var st status.Report
	if b, rerr := os.ReadFile(filepath.Join(out, "status.json")); rerr == nil {
		_ = json.Unmarshal(b, &st)
	}
	t.Cleanup(func() {
		// A mastfs left behind holds the namespace and its mount: end it.
		if st.PID > 0 && processAlive(st.PID) {
			_ = syscall.Kill(st.PID, syscall.SIGKILL)
		}
	})
	if err != nil {
		log, _ := os.ReadFile(logFile)
		t.Fatalf("mount -t fuse.mastfs: %v\n%s\nlog:\n%s", err, output, log)
	}
	ls, _ := os.ReadFile(filepath.Join(out, "ls.txt"))
	if !strings.Contains(string(ls), filepath.Base(s.Stage.UserFile)) {
		t.Errorf("ls of the account's stage: %q", ls)
	}
	if st.User != s.User || st.RemoteDir != "/"+s.Stage.UserDir || st.Port != s.Port || st.Mountpoint != mp {
		t.Errorf("status of the fstab mount: %+v", st)
	}
	if mountinfo.Mounted(mp) {
		t.Error("the mount is visible outside its namespace")
	}
	if log, _ := os.ReadFile(logFile); strings.Contains(string(log), s.Password) {
		t.Error("password in the log")
	}
}

// processAlive reports whether pid exists.
func processAlive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}
