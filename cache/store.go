package cache

import (
	"errors"
	"os"
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
	// Close releases the store's directory. What is stored stays.
	Close() error
}

// Usage is what a Store holds against its bound.
type Usage struct {
	Used   int64 // bytes of chunks stored
	Limit  int64 // bound on Used
	Chunks int   // chunks stored
}

// ErrStale means a chunk arrived for a file version that is no longer the
// one kept under its path.
var ErrStale = errors.New("chunk of a replaced file version")

// openStore opens the store the engine uses by default.
func openStore(cfg Config) (Store, error) {
	return openV1(cfg)
}

var _ Store = (*v1Store)(nil)
var _ = os.ErrNotExist
