package chunkstore

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// errNoPunch means the file system can't punch holes.
var errNoPunch = errors.New("punching holes not supported")

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
	if err := tryLock(f); err != nil {
		f.Close()
		if errors.Is(err, ErrInUse) {
			return nil, fmt.Errorf("cache: %s is in use by another process", root)
		}
		return nil, fmt.Errorf("cache: lock %s: %w", root, err)
	}
	return f, nil
}

// tryLock takes an exclusive flock on f without waiting: ErrInUse if another holds it.
func tryLock(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrInUse
	}
	return err
}

// olderFormats are the version directories of earlier formats.
var olderFormats = []string{"v1"}

// removeOlderFormats removes a cache in an older format from dir, with one
// log line, unless a running mount holds it. Nothing in it is read.
func removeOlderFormats(dir string, log *slog.Logger) {
	for _, old := range olderFormats {
		root := filepath.Join(dir, old)
		if _, err := os.Lstat(root); err != nil {
			continue
		}
		if f, err := os.Open(filepath.Join(root, "lock")); err == nil {
			err = tryLock(f)
			defer f.Close()
			if errors.Is(err, ErrInUse) {
				log.Warn("cache: a cache in an older format is in use; left as it is", "dir", root)
				continue
			}
		}
		if err := os.RemoveAll(root); err != nil {
			log.Warn("cache: cannot remove a cache in an older format", "dir", root, "err", err)
			continue
		}
		log.Info("cache: removed a cache in an older format", "dir", root, "format", old, "now", versionDir)
	}
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

// removeTemps removes the temporary files a crash left in the directories under dir.
func removeTemps(dir string) {
	subs, _ := os.ReadDir(dir)
	for _, sub := range subs {
		ents, _ := os.ReadDir(filepath.Join(dir, sub.Name()))
		for _, e := range ents {
			if strings.Contains(e.Name(), tempMark) {
				os.Remove(filepath.Join(dir, sub.Name(), e.Name()))
			}
		}
	}
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
