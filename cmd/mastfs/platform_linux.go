package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// detach unmounts, lazily if asked: as root with umount(2), else with fusermount3.
func detach(mountpoint string, lazy bool) error {
	if os.Geteuid() == 0 {
		flags := 0
		if lazy {
			flags = syscall.MNT_DETACH
		}
		return syscall.Unmount(mountpoint, flags)
	}
	args := []string{"-u"}
	if lazy {
		args = []string{"-uz"}
	}
	out, err := exec.Command("fusermount3", append(args, mountpoint)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fusermount3 %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// mountHint adds to a failed mount what the user can do about it, from
// what this machine lacks rather than from the error's words.
func mountHint(err error) error {
	if syscall.Access("/dev/fuse", 6 /* R_OK|W_OK */) != nil {
		return fmt.Errorf("%w: /dev/fuse is missing or not readable and writable by you "+
			"(Debian makes it crw-rw-rw-; in a container, pass --device /dev/fuse)", err)
	}
	if os.Geteuid() != 0 {
		_, err3 := exec.LookPath("fusermount3")
		_, err2 := exec.LookPath("fusermount")
		if err3 != nil && err2 != nil {
			return fmt.Errorf("%w: mounting as an ordinary user needs fusermount3: apt-get install fuse3", err)
		}
	}
	return err
}
