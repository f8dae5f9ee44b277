package cache

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// touchEvery bounds how often a chunk's mtime is set on use. The mtime only
// orders the index after a restart, so a coarse one is enough.
const touchEvery = time.Minute

type chunkID struct {
	file  [32]byte // pathHash
	index int64
}

type chunkEntry struct {
	size     int64     // bytes on disk, header included
	verified bool      // checked against its header in this process
	touched  time.Time // last mtime given to the file
}

// fileRecord is what the store knows of one remote path.
type fileRecord struct {
	id         fileID
	chunks     map[int64]struct{}
	metaOnDisk bool
}

// store keeps chunks on disk, one file each, and the LRU index over them.
type store struct {
	root      string // Dir/v1/chunks
	chunkSize int64
	log       *slog.Logger

	mu       sync.Mutex // guards index, files, used, limit, recycled and every chunkEntry
	index    *simplelru.LRU[chunkID, *chunkEntry]
	files    map[[32]byte]*fileRecord
	used     int64
	limit    int64
	recycled int64 // chunk files written over, for unique temporary names
}

func newStore(root string, chunkSize int64, log *slog.Logger) *store {
	index, _ := simplelru.NewLRU[chunkID, *chunkEntry](math.MaxInt, nil)
	return &store{root: root, chunkSize: chunkSize, log: log, index: index, files: map[[32]byte]*fileRecord{}}
}

func (s *store) chunkLen(id fileID, i int64) int64 {
	return min(s.chunkSize, id.Size-i*s.chunkSize)
}

// chunks returns how many chunks a file of size bytes has.
func (s *store) chunks(size int64) int64 { return (size + s.chunkSize - 1) / s.chunkSize }

func (s *store) chunkPath(file [32]byte, i int64) string {
	return filepath.Join(fileDir(s.root, file), chunkName(i))
}

// use makes id the cached version of its path, dropping the chunks of any
// other version.
func (s *store) use(id fileID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.files[id.pathHash]
	if rec != nil && rec.id.verHash == id.verHash {
		return
	}
	if rec != nil {
		s.log.Info("cache: file changed on the server; dropping its chunks",
			"path", id.Path, "chunks", len(rec.chunks), "size", id.Size, "mtime", id.ModTime)
		s.dropFileLocked(rec)
	}
	s.files[id.pathHash] = &fileRecord{id: id, chunks: map[int64]struct{}{}}
}

// has reports whether chunk i of id is in the index.
func (s *store) has(id fileID, i int64) bool {
	first, _ := s.missing(id, i, i+1)
	return first < 0
}

// missing returns the first and last chunks in [from, to) that are not in
// the index, or -1, -1.
func (s *store) missing(id fileID, from, to int64) (first, last int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.files[id.pathHash]
	first, last = -1, -1
	for i := from; i < to; i++ {
		if rec != nil && rec.id.verHash == id.verHash {
			if _, ok := rec.chunks[i]; ok {
				continue
			}
		}
		if first < 0 {
			first = i
		}
		last = i
	}
	return first, last
}

// read copies chunk i of id, from within bytes into the chunk, into dst. It
// reports false when the chunk is not there or fails its check, which the
// caller treats as a miss. A chunk is checked on its first read in this
// process; the file is opened under the lock, so eviction can't swap it.
func (s *store) read(id fileID, i int64, dst []byte, within int64, scratch []byte) bool {
	cid := chunkID{id.pathHash, i}
	path := s.chunkPath(id.pathHash, i)
	now := time.Now()
	s.mu.Lock()
	rec := s.files[id.pathHash]
	e, ok := s.index.Get(cid)
	if !ok || rec == nil || rec.id.verHash != id.verHash {
		s.mu.Unlock()
		return false
	}
	f, err := os.Open(path)
	verified := e.verified
	touch := now.Sub(e.touched) > touchEvery
	if touch {
		e.touched = now
	}
	s.mu.Unlock()
	if err != nil {
		s.discard(cid, e, "open", err)
		return false
	}
	defer f.Close()
	if !verified {
		want := chunkHeader{version: id.verHash, offset: i * s.chunkSize, length: uint32(s.chunkLen(id, i))}
		if err := checkChunk(f, e.size, want, scratch); err != nil {
			s.discard(cid, e, "check", err)
			return false
		}
		s.mu.Lock()
		e.verified = true
		s.mu.Unlock()
	}
	if n, err := f.ReadAt(dst, headerLen+within); n < len(dst) {
		s.discard(cid, e, "read", err)
		return false
	}
	// An evicted chunk's file may be written over with another chunk
	// (recycle): what was read counts only if the chunk is still there.
	s.mu.Lock()
	cur, ok := s.index.Peek(cid)
	s.mu.Unlock()
	if !ok || cur != e {
		return false
	}
	if touch {
		os.Chtimes(path, now, now) // best effort: only orders the index after a restart
	}
	return true
}

// discard drops a chunk that could not be read, unless it was replaced meanwhile.
func (s *store) discard(cid chunkID, e *chunkEntry, op string, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		s.log.Debug("cache: chunk vanished; fetching again", "chunk", cid.index, "err", err)
	} else {
		s.log.Warn("cache: dropping damaged chunk; fetching again", "op", op, "chunk", cid.index,
			"file", filepath.Base(fileDir(s.root, cid.file)), "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.index.Peek(cid); ok && cur == e {
		s.dropLocked(cid, e)
	}
}

// put stores chunk i of id. buf holds headerLen bytes of room for the
// header, then the chunk's data. The file is written aside, then renamed
// into place under the lock together with the index update.
func (s *store) put(id fileID, i int64, buf []byte) error {
	data := buf[headerLen:]
	h := chunkHeader{version: id.verHash, offset: i * s.chunkSize, length: uint32(len(data))}
	h.crc = crc32.Checksum(data, castagnoli)
	h.encode(buf[:headerLen])
	dir := fileDir(s.root, id.pathHash)
	var f *os.File
	err := fs.ErrNotExist
	for try := 0; try < 2 && errors.Is(err, fs.ErrNotExist); try++ {
		// Forget or a new version may remove the directory between the two calls.
		if err = os.MkdirAll(dir, 0o700); err == nil {
			if f = s.recycle(dir, i); f == nil {
				f, err = os.CreateTemp(dir, chunkName(i)+tempMark+"*")
			}
		}
	}
	if err != nil {
		return err
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Truncate(int64(len(buf))) // a recycled file may be longer
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.files[id.pathHash]
	if rec == nil || rec.id.verHash != id.verHash {
		os.Remove(f.Name())
		return ErrStale
	}
	if rec.metaOnDisk {
		// The directory may have been removed under us (someone cleaning
		// the cache): chunks without their meta are dropped at restart.
		if _, err := os.Lstat(filepath.Join(dir, metaName)); err != nil {
			rec.metaOnDisk = false
		}
	}
	if !rec.metaOnDisk {
		m := fileMeta{path: id.Path, size: id.Size, mtime: id.ModTime, chunkSize: s.chunkSize}
		if err := writeAtomic(dir, metaName, encodeMeta(m)); err != nil {
			os.Remove(f.Name())
			return err
		}
		rec.metaOnDisk = true
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, chunkName(i))); err != nil {
		os.Remove(f.Name())
		return err
	}
	cid := chunkID{id.pathHash, i}
	if old, ok := s.index.Peek(cid); ok {
		s.used -= old.size
	}
	s.index.Add(cid, &chunkEntry{size: int64(len(buf)), verified: true, touched: time.Now()})
	s.used += int64(len(buf))
	rec.chunks[i] = struct{}{}
	s.shrinkLocked(s.limit)
	return nil
}

// recycle makes room for chunk i of the file whose directory is dir when
// the cache is full: it evicts the least recently used chunk and returns
// its file, moved into dir under a temporary name and open for writing
// over. It returns nil when there is room, or nothing to evict but the
// newest chunk. Creating a file per chunk and deleting one per eviction
// costs more than the copy into it: ext4 looks through the inodes deleted
// in the last minutes for each new one.
func (s *store) recycle(dir string, i int64) *os.File {
	s.mu.Lock()
	if s.used+headerLen+s.chunkSize <= s.limit || s.index.Len() <= 1 {
		s.mu.Unlock()
		return nil
	}
	cid, e, _ := s.index.GetOldest()
	s.unindexLocked(cid, e)
	s.recycled++
	old := s.chunkPath(cid.file, cid.index)
	tmp := filepath.Join(dir, chunkName(i)+tempMark+"r"+strconv.FormatInt(s.recycled, 10))
	err := os.Rename(old, tmp)
	s.mu.Unlock()
	if err != nil {
		os.Remove(old)
		return nil
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY, 0)
	if err != nil {
		os.Remove(tmp)
		return nil
	}
	return f
}

// shrinkLocked evicts the least recently used chunks until used <= target,
// sparing the newest one, which a reader is about to read.
func (s *store) shrinkLocked(target int64) {
	for s.used > target && s.index.Len() > 1 {
		cid, e, _ := s.index.GetOldest()
		s.dropLocked(cid, e)
	}
}

// evict frees at least n bytes; used after a failed write.
func (s *store) evict(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shrinkLocked(max(0, s.used-n))
}

func (s *store) setLimit(limit int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = limit
	s.shrinkLocked(limit)
}

func (s *store) dropLocked(cid chunkID, e *chunkEntry) {
	s.unindexLocked(cid, e)
	if err := os.Remove(s.chunkPath(cid.file, cid.index)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("cache: remove chunk", "err", err)
	}
}

// unindexLocked takes a chunk out of the index, leaving its file.
func (s *store) unindexLocked(cid chunkID, e *chunkEntry) {
	s.index.Remove(cid)
	s.used -= e.size
	if rec := s.files[cid.file]; rec != nil {
		delete(rec.chunks, cid.index)
	}
}

// dropFileLocked removes a file's chunks, meta and directory.
func (s *store) dropFileLocked(rec *fileRecord) {
	for i := range rec.chunks {
		cid := chunkID{rec.id.pathHash, i}
		if e, ok := s.index.Peek(cid); ok {
			s.dropLocked(cid, e)
		}
	}
	dir := fileDir(s.root, rec.id.pathHash)
	os.Remove(filepath.Join(dir, metaName))
	os.Remove(dir) // fails while a chunk is being written into it; the scan tidies up later
	delete(s.files, rec.id.pathHash)
}

// forget drops every file at or under the remote path prefix and returns
// how many files it dropped.
func (s *store) forget(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, rec := range s.files {
		if underPrefix(rec.id.Path, prefix) {
			s.dropFileLocked(rec)
			n++
		}
	}
	return n
}

func underPrefix(path, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

func (s *store) stats() (used, limit int64, chunks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used, s.limit, s.index.Len()
}

// v1Store is the store in the first on-disk format, behind the Store interface.
type v1Store struct {
	*store
	records string   // Dir/v1/records
	dirLock *os.File // holds the flock on Dir/v1; nil on a read-only tree
	scratch sync.Pool
	bufs    sync.Pool // *[]byte of headerLen+chunkSize: a chunk file's contents
}

func openV1(cfg Config) (*v1Store, error) {
	root := filepath.Join(cfg.Dir, versionDir)
	chunks, records := filepath.Join(root, "chunks"), filepath.Join(root, "records")
	for _, d := range []string{cfg.Dir, root, chunks, records} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	dirLock, err := lockDir(root, cfg.Logger)
	if err != nil {
		return nil, err
	}
	st := newStore(chunks, cfg.ChunkSize, cfg.Logger)
	if err := st.scan(); err != nil {
		if dirLock != nil {
			dirLock.Close()
		}
		return nil, fmt.Errorf("cache: scan %s: %w", chunks, err)
	}
	removeTemps(records)
	used, _, _ := st.stats()
	st.setLimit(limitToDisk(cfg.MaxBytes, used, root, cfg.Logger))
	v := &v1Store{store: st, records: records, dirLock: dirLock}
	v.scratch.New = func() any { b := make([]byte, 64<<10); return &b }
	v.bufs.New = func() any { b := make([]byte, headerLen+cfg.ChunkSize); return &b }
	return v, nil
}

func (v *v1Store) ChunkSize() int64 { return v.chunkSize }
func (v *v1Store) Use(k Key)        { v.use(newFileID(k)) }
func (v *v1Store) Missing(k Key, from, to int64) (int64, int64) {
	return v.missing(newFileID(k), from, to)
}

func (v *v1Store) ReadChunk(k Key, i int64, dst []byte, within int64) bool {
	sp := v.scratch.Get().(*[]byte)
	defer v.scratch.Put(sp)
	return v.read(newFileID(k), i, dst, within, *sp)
}

func (v *v1Store) PutChunk(k Key, i int64, data []byte) error {
	bp := v.bufs.Get().(*[]byte)
	defer v.bufs.Put(bp)
	buf := (*bp)[:headerLen+len(data)]
	copy(buf[headerLen:], data)
	return v.put(newFileID(k), i, buf)
}

func (v *v1Store) Evict(n int64)            { v.evict(n) }
func (v *v1Store) Forget(prefix string) int { return v.forget(prefix) }
func (v *v1Store) Usage() Usage {
	used, limit, n := v.stats()
	return Usage{Used: used, Limit: limit, Chunks: n}
}

func (v *v1Store) Close() error {
	if v.dirLock == nil {
		return nil
	}
	return v.dirLock.Close() // closing drops the flock
}
