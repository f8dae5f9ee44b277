package cache

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// lockDir takes an exclusive flock on root/lock, so two processes never
// share one cache directory. The lock goes with the returned file, which is
// held read-only: that is all flock needs, and it leaves the file system
// free to be remounted read-only. A lock file that can't be created (a
// read-only tree) means running without one, as a nil file.
func lockDir(root string, log *slog.Logger) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(root, "lock"), os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		log.Warn("cache: cannot create the lock file; running without one", "dir", root, "err", err)
		return nil, nil
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("cache: %s is in use by another process", root)
		}
		return nil, fmt.Errorf("cache: lock %s: %w", root, err)
	}
	return f, nil
}

// limitToDisk lowers the asked bound to what the file system holding dir
// can take: the cache's own bytes plus 90% of the space still free.
func limitToDisk(asked, used int64, dir string, log *slog.Logger) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		log.Warn("cache: cannot read free disk space; keeping the configured limit", "dir", dir, "err", err)
		return asked
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	allowed := used + free/10*9
	if asked > allowed {
		log.Warn("cache: limit lowered to fit free disk", "dir", dir, "asked", asked, "limit", allowed, "free", free)
		return allowed
	}
	return asked
}

// removeTemps removes the temporary files a crash left in the record kinds under dir.
func removeTemps(dir string) {
	kinds, _ := os.ReadDir(dir)
	for _, k := range kinds {
		ents, _ := os.ReadDir(filepath.Join(dir, k.Name()))
		for _, e := range ents {
			if strings.Contains(e.Name(), tempMark) {
				os.Remove(filepath.Join(dir, k.Name(), e.Name()))
			}
		}
	}
}
