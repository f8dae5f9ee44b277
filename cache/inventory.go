package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FileUsage is what a cache directory holds of one remote file.
type FileUsage struct {
	Path    string    // remote path
	Size    int64     // the file's size when it was cached
	ModTime time.Time // and its modification time
	Cached  int64     // data bytes in chunks on disk
	Chunks  int       // chunk files on disk
	OnDisk  int64     // bytes of those chunk files, headers included
}

// ErrInUse means a running mount holds the cache directory.
var ErrInUse = errors.New("the cache is in use by a running mount")

// Inventory lists what the cache in dir holds, per file, sorted by path,
// from the meta records and chunk files on disk. It takes no lock and reads
// only: a mount using the cache may change it meanwhile, so the figures are
// a snapshot. A directory with no cache in it gives an empty list.
func Inventory(dir string) ([]FileUsage, error) {
	chunks := filepath.Join(dir, versionDir, "chunks")
	fans, err := os.ReadDir(chunks)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cache %s: %w", dir, err)
	}
	var out []FileUsage
	for _, fan := range fans {
		if !fan.IsDir() || !isHex(fan.Name(), 2) {
			continue
		}
		files, err := os.ReadDir(filepath.Join(chunks, fan.Name()))
		if err != nil {
			continue // removed meanwhile
		}
		for _, f := range files {
			if u, ok := fileUsage(filepath.Join(chunks, fan.Name(), f.Name())); ok {
				out = append(out, u)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// fileUsage reads one file directory: its meta and its chunk files.
func fileUsage(dir string) (FileUsage, bool) {
	b, err := os.ReadFile(filepath.Join(dir, metaName))
	if err != nil {
		return FileUsage{}, false
	}
	m, err := decodeMeta(b)
	if err != nil {
		return FileUsage{}, false
	}
	u := FileUsage{Path: m.path, Size: m.size, ModTime: m.mtime}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return FileUsage{}, false
	}
	for _, e := range ents {
		name := e.Name()
		if name == metaName || strings.Contains(name, tempMark) {
			continue
		}
		if _, err := strconv.ParseInt(name, 10, 64); err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Size() < headerLen {
			continue
		}
		u.Chunks++
		u.OnDisk += info.Size()
		u.Cached += info.Size() - headerLen
	}
	return u, u.Chunks > 0
}

// Clear removes every chunk and record kept in the cache directory dir,
// and reports what it removed. It takes the lock a Cache holds while open,
// so it refuses with ErrInUse rather than pull files from under a running
// mount, in this process or another.
func Clear(dir string) ([]FileUsage, error) {
	root := filepath.Join(dir, versionDir)
	lock, err := os.OpenFile(filepath.Join(root, "lock"), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nothing was ever cached here
	}
	if err != nil {
		return nil, fmt.Errorf("clear cache %s: %w", dir, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("clear cache %s: %w", dir, ErrInUse)
		}
		return nil, fmt.Errorf("clear cache %s: lock: %w", dir, err)
	}
	gone, err := Inventory(dir)
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"chunks", "records"} {
		if err := os.RemoveAll(filepath.Join(root, sub)); err != nil {
			return nil, fmt.Errorf("clear cache %s: %w", dir, err)
		}
	}
	return gone, nil
}
