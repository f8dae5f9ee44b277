package chunkstore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// FileUsage is what a cache directory holds of one remote file.
type FileUsage struct {
	Path    string    // remote path
	Size    int64     // the file's size when it was cached
	ModTime time.Time // and its modification time
	Cached  int64     // bytes of its chunks stored
	Chunks  int       // chunks stored
	OnDisk  int64     // disk space its data and index files take
}

// ErrInUse means a running mount holds the cache directory.
var ErrInUse = errors.New("the cache is in use by a running mount")

// Inventory lists what the cache in dir holds, per file, sorted by path,
// from the index files on disk. It takes no lock and reads only: a mount
// using the cache may change it meanwhile, so the figures are a snapshot.
// A directory with no cache in it gives an empty list.
func Inventory(dir string) ([]FileUsage, error) {
	files := filepath.Join(dir, versionDir, filesDir)
	fans, err := os.ReadDir(files)
	if isNotExist(err) {
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
		ents, err := os.ReadDir(filepath.Join(files, fan.Name()))
		if err != nil {
			continue // removed meanwhile
		}
		for _, e := range ents {
			name, ok := strings.CutSuffix(e.Name(), indexExt)
			if !ok || !isHex(name, 64) {
				continue
			}
			if u, ok := fileUsage(files, name); ok {
				out = append(out, u)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// fileUsage reads the index of one version and sizes its files.
func fileUsage(files, name string) (FileUsage, bool) {
	data, index := versionPaths(files, name)
	b, err := os.ReadFile(index)
	if err != nil {
		return FileUsage{}, false
	}
	h, n, err := decodeIndexHeader(b)
	if err != nil || h.chunkSize <= 0 {
		return FileUsage{}, false
	}
	nchunks := (h.key.Size + h.chunkSize - 1) / h.chunkSize
	chunks, _ := decodeEntries(b[n:], nchunks)
	u := FileUsage{Path: h.key.Path, Size: h.key.Size, ModTime: h.key.ModTime, Chunks: len(chunks),
		OnDisk: allocated(index) + allocated(data)}
	for i := range chunks {
		u.Cached += min(h.chunkSize, h.key.Size-i*h.chunkSize)
	}
	return u, u.Chunks > 0
}

// allocated returns the disk space a file takes: less than its size when sparse.
func allocated(p string) int64 {
	info, err := os.Lstat(p)
	if err != nil {
		return 0
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return info.Size()
}

// Clear removes every chunk and record kept in the cache directory dir,
// and a cache in an older format, and reports what it removed. It takes
// the lock a Store holds while open, so it refuses with ErrInUse rather
// than pull files from under a running mount, in this process or another.
func Clear(dir string) ([]FileUsage, error) {
	removeOlderFormats(dir, slog.New(slog.DiscardHandler))
	root := filepath.Join(dir, versionDir)
	lock, err := os.OpenFile(filepath.Join(root, "lock"), os.O_RDONLY, 0)
	if isNotExist(err) {
		return nil, nil // nothing was ever cached here
	}
	if err != nil {
		return nil, fmt.Errorf("clear cache %s: %w", dir, err)
	}
	defer lock.Close()
	if err := tryLock(lock); err != nil {
		return nil, fmt.Errorf("clear cache %s: %w", dir, err)
	}
	gone, err := Inventory(dir)
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{filesDir, recordsDir} {
		if err := os.RemoveAll(filepath.Join(root, sub)); err != nil {
			return nil, fmt.Errorf("clear cache %s: %w", dir, err)
		}
	}
	return gone, nil
}
