package status

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// runtimeDir is this user's directory of links to control sockets:
// $XDG_RUNTIME_DIR/mastfs, else /run/mastfs for root, else a directory in
// the temporary directory that only this user may use.
func runtimeDir() (string, error) {
	var dir string
	switch {
	case os.Getenv("XDG_RUNTIME_DIR") != "":
		dir = filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "mastfs")
	case os.Geteuid() == 0:
		dir = "/run/mastfs"
	default:
		dir = filepath.Join(os.TempDir(), "mastfs-"+strconv.Itoa(os.Geteuid()))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("runtime directory: %w", err)
	}
	// In a shared temporary directory, someone else may have made it first.
	st, err := os.Lstat(dir)
	if err != nil {
		return "", fmt.Errorf("runtime directory: %w", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || !ok || int(sys.Uid) != os.Geteuid() || st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("runtime directory %s is not a private directory of this user: %w", dir, fs.ErrPermission)
	}
	return dir, nil
}

// linkPath is the link to the control socket of the mount at mountpoint:
// a short name, whatever the length of the socket's own path.
func linkPath(mountpoint string) (string, error) {
	dir, err := runtimeDir()
	if err != nil {
		return "", err
	}
	h := sha256.Sum256([]byte(mountpoint))
	return filepath.Join(dir, hex.EncodeToString(h[:12])+".sock"), nil
}

// pruneLinks removes the links of the runtime directory whose sockets are
// gone: those of mounts whose process was killed and whose cache directory
// was removed since. A live mount's link never dangles: it is made after
// its socket.
func pruneLinks() {
	dir, err := runtimeDir()
	if err != nil {
		return
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink == 0 || filepath.Ext(e.Name()) != ".sock" {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			os.Remove(p)
		}
	}
}
