package cache

import (
	"os"
	"strings"

	"mastfs/cache/chunkstore"
)

// Store keeps chunks of remote file versions on local disk, within a bound,
// evicting the least recently used, and small records beside them. It only
// keeps: fetching what it lacks is the engine's part (Cache). Chunk i of a
// file holds its bytes [i*ChunkSize, (i+1)*ChunkSize), the last one shorter.
type Store interface {
	// ChunkSize is the length of every chunk but a file's last.
	ChunkSize() int64
	// Use makes k the version of k.Path the store keeps, dropping the
	// chunks of any other version of that path.
	Use(k Key)
	// Missing returns the first and last chunks in [from, to) of k that are
	// not stored, or -1, -1 when all are.
	Missing(k Key, from, to int64) (first, last int64)
	// ReadChunk copies chunk i of k, from within bytes into it, into dst.
	// It reports false when the chunk is absent, or fails its check and has
	// been dropped: the caller fetches it again.
	ReadChunk(k Key, i int64, dst []byte, within int64) bool
	// PutChunk stores chunk i of k, whose bytes are data. It returns
	// ErrStale when k is no longer the version kept for its path.
	PutChunk(k Key, i int64, data []byte) error
	// Evict frees at least n bytes, least recently used first.
	Evict(n int64)
	// Forget drops every file at or under the remote path prefix and
	// returns how many it dropped.
	Forget(prefix string) int
	// Usage returns the bytes stored, the bound on them, and the chunks stored.
	Usage() Usage
	// PutRecord stores data under (kind, name), replacing any earlier record atomically.
	PutRecord(kind, name string, data []byte) error
	// GetRecord returns the record under (kind, name): fs.ErrNotExist when
	// there is none, ErrCorrupt when it was damaged (and is now removed).
	GetRecord(kind, name string) ([]byte, error)
	// Backing returns the data file of k, open read-only, when every chunk
	// of k is stored and checked; while held (until release) none of it is
	// evicted. ok is false otherwise.
	Backing(k Key) (f *os.File, release func(), ok bool)
	// Close releases the store's directory. What is stored stays.
	Close() error
}

// Usage is what a Store holds against its bound.
type Usage = chunkstore.Usage

// ErrStale means a chunk arrived for a file version that is no longer the
// one kept under its path.
var ErrStale = chunkstore.ErrStale

// openStore opens the store the engine uses by default: chunkstore, in cfg.Dir.
func openStore(cfg Config) (Store, error) {
	return chunkstore.Open(chunkstore.Config{Dir: cfg.Dir, MaxBytes: cfg.MaxBytes, ChunkSize: cfg.ChunkSize, Logger: cfg.Logger})
}

var _ Store = (*chunkstore.Store)(nil)

// Inventory lists what the cache in dir holds, per file, sorted by path. It
// reads only, without a lock: the figures are a snapshot. A directory with
// no cache in it gives an empty list.
func Inventory(dir string) ([]FileUsage, error) { return chunkstore.Inventory(dir) }

// Clear removes every chunk and record kept in the cache directory dir and
// reports what it removed. It refuses with ErrInUse while a Cache is open
// on dir, in this process or another.
func Clear(dir string) ([]FileUsage, error) { return chunkstore.Clear(dir) }

// FileUsage is what a cache directory holds of one remote file.
type FileUsage = chunkstore.FileUsage

// ErrInUse means a running mount holds the cache directory.
var ErrInUse = chunkstore.ErrInUse

func underPrefix(path, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}
