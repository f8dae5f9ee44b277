package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// detach unmounts with umount(8), forced if lazy is asked: macOS has no
// lazy unmount, and macFUSE mounts are the user's to unmount.
func detach(mountpoint string, lazy bool) error {
	args := []string{mountpoint}
	if lazy {
		args = []string{"-f", mountpoint}
	}
	out, err := exec.Command("umount", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("umount %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// mountHint adds to a failed mount what a Mac needs: macFUSE.
func mountHint(err error) error {
	for _, p := range []string{"/Library/Filesystems/macfuse.fs", "/Library/Filesystems/osxfuse.fs"} {
		if _, serr := os.Stat(p); serr == nil {
			return err
		}
	}
	return fmt.Errorf("%w: mounting on macOS needs macFUSE (https://osxfuse.github.io/), "+
		"and its system extension allowed in System Settings", err)
}
