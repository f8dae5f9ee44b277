// Package chunkstore keeps chunks of remote files on local disk, in one
// sparse file per file version, within a bound, evicting the least
// recently used chunk by punching its hole.
//
// A chunk's bytes are written into the version's data file with pwrite at
// the chunk's offset; only then is an entry with the chunk's crc32c
// appended to the version's index. So a chunk half-written when the
// process died has no entry and is never served, and one whose entry
// outlived its bytes (a power cut) fails its crc on its first read in a
// process, is dropped, and is fetched again by the caller.
package chunkstore

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Config sets up a Store.
type Config struct {
	Dir       string       // cache root; created 0700, files 0600
	MaxBytes  int64        // bound on stored chunk bytes, lowered to fit free disk
	ChunkSize int64        // length of every chunk but a file's last
	Logger    *slog.Logger // default slog.Default()
}

var (
	// ErrStale means a chunk arrived for a file version that is no longer
	// the one kept under its path.
	ErrStale = errors.New("chunk of a replaced file version")
	// ErrCorrupt means a stored record failed its checks; it has been removed.
	ErrCorrupt = errors.New("cache record corrupt")
)

// touchEvery bounds how often a data file's mtime is set on use. The mtime
// only orders the index after a restart, so a coarse one is enough.
const touchEvery = time.Minute

// version is what the store knows of one file version.
type version struct {
	key     Key
	data    string // path of the data file
	index   string // path of the index file
	nchunks int64
	chunks  map[int64]*chunk // the chunks stored
	entries int              // entries in the index file, drops included
	onDisk  bool             // data file created
	indexed bool             // index file created (with the first entry)
	held    int              // backing files handed out and not yet released
	gone    int64            // bytes still counted for a version dropped while held
	touched time.Time        // last mtime given to the data file
	created int              // times the files were made: a write spanning one went to a file no longer kept
	// writing counts the puts of a chunk under way; spoiled marks a chunk
	// whose hole was punched during one of them (it was put twice at once).
	writing map[int64]int
	spoiled map[int64]bool
}

// chunk is one stored chunk.
type chunk struct {
	crc      uint32 // crc32c of its bytes
	verified bool   // checked against crc in this process
}

// ref names a chunk in the LRU.
type ref struct {
	v     *version
	index int64
}

// Store is a chunk store on disk. It is safe for concurrent use.
type Store struct {
	chunkSize int64
	files     string   // Dir/v2/files
	records   string   // Dir/v2/records
	lock      *os.File // holds the flock on Dir/v2; nil on a read-only tree
	log       *slog.Logger
	scratch   sync.Pool // *[]byte of chunkSize, for checking a chunk

	mu        sync.Mutex // guards every field below, and every version and chunk
	paths     map[string]*version
	lru       *simplelru.LRU[ref, *chunk] // chunks that may be evicted, least recently used first
	used      int64
	limit     int64
	nchunks   int
	noPunch   bool // the file system can't punch holes: evict whole files
	saidPunch bool
}

// Open opens the store in cfg.Dir, creating it if needed, removes a cache
// in an older format, and rebuilds the index from what an earlier run left.
func Open(cfg Config) (*Store, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ChunkSize <= 0 || cfg.MaxBytes <= 0 {
		return nil, fmt.Errorf("cache: chunk size %d, bound %d", cfg.ChunkSize, cfg.MaxBytes)
	}
	root := filepath.Join(cfg.Dir, versionDir)
	s := &Store{chunkSize: cfg.ChunkSize, log: cfg.Logger,
		files: filepath.Join(root, filesDir), records: filepath.Join(root, recordsDir),
		paths: map[string]*version{}}
	s.lru, _ = simplelru.NewLRU[ref, *chunk](math.MaxInt, nil)
	s.scratch.New = func() any { b := make([]byte, cfg.ChunkSize); return &b }
	for _, d := range []string{cfg.Dir, root, s.files, s.records} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	removeOlderFormats(cfg.Dir, s.log)
	lock, err := lockDir(root, s.log)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	if err := s.scan(); err != nil {
		s.Close()
		return nil, fmt.Errorf("cache: scan %s: %w", s.files, err)
	}
	removeTemps(s.records)
	s.mu.Lock()
	s.limit = limitToDisk(cfg.MaxBytes, s.used, root, s.log)
	s.shrinkLocked(s.limit)
	s.mu.Unlock()
	return s, nil
}

// ChunkSize is the length of every chunk but a file's last.
func (s *Store) ChunkSize() int64 { return s.chunkSize }

func (s *Store) newVersion(k Key) *version {
	data, index := versionPaths(s.files, versionName(k))
	return &version{key: k, data: data, index: index, nchunks: (k.Size + s.chunkSize - 1) / s.chunkSize,
		chunks: map[int64]*chunk{}, writing: map[int64]int{}, spoiled: map[int64]bool{}}
}

func (s *Store) chunkLen(v *version, i int64) int64 {
	return min(s.chunkSize, v.key.Size-i*s.chunkSize)
}

// lookupLocked returns the version k if it is the one kept for its path.
func (s *Store) lookupLocked(k Key) *version {
	if v := s.paths[k.Path]; v != nil && v.key.same(k) {
		return v
	}
	return nil
}

// Use makes k the version of k.Path the store keeps, dropping any other.
func (s *Store) Use(k Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.paths[k.Path]
	if old != nil && old.key.same(k) {
		return
	}
	if old != nil {
		s.log.Info("cache: file changed on the server; dropping its chunks",
			"path", k.Path, "chunks", len(old.chunks), "size", k.Size, "mtime", k.ModTime)
		s.clearLocked(old)
	}
	s.paths[k.Path] = s.newVersion(k)
}

// Missing returns the first and last chunks in [from, to) of k that are
// not stored, or -1, -1.
func (s *Store) Missing(k Key, from, to int64) (first, last int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.lookupLocked(k)
	first, last = -1, -1
	for i := from; i < to; i++ {
		if v != nil && v.chunks[i] != nil {
			continue
		}
		if first < 0 {
			first = i
		}
		last = i
	}
	return first, last
}

// Usage is what a Store holds against its bound.
type Usage struct {
	Used   int64 // bytes of chunks stored
	Limit  int64 // bound on Used
	Chunks int   // chunks stored
}

// Usage returns the bytes stored, the bound, and the chunks stored.
func (s *Store) Usage() Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Usage{Used: s.used, Limit: s.limit, Chunks: s.nchunks}
}

// ReadChunk copies chunk i of k, from within bytes into it, into dst. It
// reports false when the chunk is not stored, or fails its check (and is
// dropped). A chunk is checked on its first read in this process. The
// chunk must still be stored once read: a hole punched, or a file removed,
// meanwhile is not served.
func (s *Store) ReadChunk(k Key, i int64, dst []byte, within int64) bool {
	now := time.Now()
	s.mu.Lock()
	v := s.lookupLocked(k)
	var c *chunk
	if v != nil {
		c = v.chunks[i]
	}
	if c == nil || !v.onDisk {
		s.mu.Unlock()
		return false
	}
	s.lru.Get(ref{v, i})
	verified := c.verified
	touch := now.Sub(v.touched) > touchEvery
	if touch {
		v.touched = now
	}
	s.mu.Unlock()
	f, err := os.Open(v.data)
	if err != nil {
		s.discard(v, i, c, "open", err)
		return false
	}
	defer f.Close()
	off := i * s.chunkSize
	if verified {
		if n, err := f.ReadAt(dst, off+within); n < len(dst) {
			s.discard(v, i, c, "read", err)
			return false
		}
	} else {
		sp := s.scratch.Get().(*[]byte)
		defer s.scratch.Put(sp)
		buf := (*sp)[:s.chunkLen(v, i)]
		if err := readChecked(f, buf, off, c.crc); err != nil {
			s.discard(v, i, c, "check", err)
			return false
		}
		copy(dst, buf[within:])
	}
	s.mu.Lock()
	ok := v.chunks[i] == c
	if ok {
		c.verified = true
	}
	s.mu.Unlock()
	if ok && touch {
		os.Chtimes(v.data, now, now) // best effort: only orders the index after a restart
	}
	return ok
}

// readChecked reads buf from f at off and checks it against crc.
func readChecked(f *os.File, buf []byte, off int64, crc uint32) error {
	if n, err := f.ReadAt(buf, off); n < len(buf) {
		return fmt.Errorf("read %d of %d bytes: %w: %w", n, len(buf), errDamaged, err)
	}
	if crc32.Checksum(buf, castagnoli) != crc {
		return fmt.Errorf("chunk crc: %w", errDamaged)
	}
	return nil
}

// discard drops a chunk that could not be read, unless it was replaced meanwhile.
func (s *Store) discard(v *version, i int64, c *chunk, op string, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		s.log.Debug("cache: chunk vanished; fetching again", "chunk", i, "err", err)
	} else {
		s.log.Warn("cache: dropping damaged chunk; fetching again", "op", op, "chunk", i,
			"file", filepath.Base(v.data), "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v.chunks[i] == c {
		s.evictLocked(v, i)
	}
}

// PutChunk stores chunk i of k: its bytes first, at their offset in the
// data file, then its index entry. It returns ErrStale when k is no longer
// the version kept for its path.
func (s *Store) PutChunk(k Key, i int64, data []byte) error {
	crc := crc32.Checksum(data, castagnoli)
	s.mu.Lock()
	v := s.lookupLocked(k)
	if v == nil {
		s.mu.Unlock()
		return ErrStale
	}
	if s.used+int64(len(data)) > s.limit {
		s.shrinkLocked(s.limit - int64(len(data))) // room first, so the disk stays within the bound
	}
	var f *os.File
	var err error
	if !v.onDisk {
		f, err = s.openDataLocked(v) // made under the lock, once
	}
	created := v.created
	v.writing[i]++
	s.mu.Unlock()
	if f == nil && err == nil {
		if f, err = os.OpenFile(v.data, os.O_RDWR, 0); errors.Is(err, fs.ErrNotExist) {
			s.mu.Lock()
			if s.lookupLocked(k) != v {
				err = ErrStale
			} else {
				f, err = s.openDataLocked(v) // removed under us: made afresh
				created = v.created
			}
			s.mu.Unlock()
		}
	}
	if err != nil {
		s.mu.Lock()
		s.doneWritingLocked(v, i)
		s.mu.Unlock()
		return err
	}
	_, err = f.WriteAt(data, i*s.chunkSize)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	spoiled := s.doneWritingLocked(v, i)
	if err != nil {
		if v.chunks[i] == nil && v.onDisk {
			s.punchLocked(v, i) // give back what the failed write took
		}
		return err
	}
	if s.lookupLocked(k) != v || v.created != created || !v.onDisk {
		return ErrStale // the bytes went into a file no longer kept
	}
	if err := s.appendLocked(v, entry{index: i, crc: crc}); err != nil {
		return err
	}
	if v.chunks[i] != nil {
		s.forgetChunkLocked(v, i)
	}
	c := &chunk{crc: crc, verified: !spoiled} // else its first read checks it
	v.chunks[i] = c
	s.used += int64(len(data))
	s.nchunks++
	if v.held == 0 {
		s.lru.Add(ref{v, i}, c)
	}
	s.shrinkLocked(s.limit)
	return nil
}

// doneWritingLocked ends a put of chunk i of v, and reports whether its
// hole was punched while the put wrote.
func (s *Store) doneWritingLocked(v *version, i int64) (spoiled bool) {
	spoiled = v.spoiled[i]
	if v.writing[i]--; v.writing[i] == 0 {
		delete(v.writing, i)
		delete(v.spoiled, i)
	}
	return spoiled
}

// openDataLocked opens v's data file for writing, creating it if needed
// (the index comes with the first entry). Files found missing (someone
// removed the cache directory) take their chunks with them and are made
// afresh.
func (s *Store) openDataLocked(v *version) (*os.File, error) {
	if v.onDisk {
		f, err := os.OpenFile(v.data, os.O_RDWR, 0)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		s.log.Warn("cache: a cached file vanished from the cache directory; caching it afresh", "path", v.key.Path)
		s.clearLocked(v)
	}
	dir := filepath.Dir(v.data)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(v.data, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(v.key.Size); err != nil {
		f.Close()
		os.Remove(v.data)
		return nil, err
	}
	v.onDisk, v.indexed, v.entries, v.touched = true, false, 0, time.Now()
	v.created++
	return f, nil
}

// appendLocked appends an entry to v's index, and rewrites the index when
// drops make up most of it.
func (s *Store) appendLocked(v *version, e entry) error {
	if v.entries > 2*len(v.chunks)+64 {
		if err := s.rewriteIndexLocked(v); err != nil {
			return err
		}
	}
	flag, b := os.O_WRONLY|os.O_APPEND, []byte(nil)
	if !v.indexed {
		// The index is made with its first entry, in one write: a crash
		// before leaves a data file without an index, removed at Open.
		flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		b = encodeIndexHeader(indexHeader{key: v.key, chunkSize: s.chunkSize})
	}
	b = append(b, make([]byte, entryLen)...)
	e.encode(b[len(b)-entryLen:])
	f, err := os.OpenFile(v.index, flag, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		v.indexed = true
		v.entries++
	}
	return err
}

// rewriteIndexLocked replaces v's index with one entry per chunk stored.
func (s *Store) rewriteIndexLocked(v *version) error {
	b := encodeIndexHeader(indexHeader{key: v.key, chunkSize: s.chunkSize})
	var e [entryLen]byte
	for i := range v.nchunks {
		if c := v.chunks[i]; c != nil {
			entry{index: i, crc: c.crc}.encode(e[:])
			b = append(b, e[:]...)
		}
	}
	if err := writeAtomic(filepath.Dir(v.index), filepath.Base(v.index), b); err != nil {
		return err
	}
	v.indexed, v.entries = true, len(v.chunks)
	return nil
}

// Close releases the store's directory. What is stored stays.
func (s *Store) Close() error {
	if s.lock == nil {
		return nil
	}
	return s.lock.Close() // closing drops the flock
}
