package chunkstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// shrinkLocked evicts the least recently used chunks until used <= target,
// sparing the newest one, which a reader is about to read. Chunks of files
// held as backing files are not in the LRU: they wait for the release.
func (s *Store) shrinkLocked(target int64) {
	for s.used > target && s.lru.Len() > 1 {
		r, _, _ := s.lru.GetOldest()
		if s.noPunch {
			s.clearLocked(r.v)
			continue
		}
		s.evictLocked(r.v, r.index)
	}
}

// Evict frees at least n bytes, least recently used first; used after a
// write the disk refused.
func (s *Store) Evict(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shrinkLocked(max(0, s.used-n))
}

// forgetChunkLocked takes chunk i of v out of the accounting, leaving its bytes.
func (s *Store) forgetChunkLocked(v *version, i int64) {
	delete(v.chunks, i)
	s.lru.Remove(ref{v, i})
	s.used -= s.chunkLen(v, i)
	s.nchunks--
}

// evictLocked drops chunk i of v: its hole is punched, then its drop is
// recorded. A version left with no chunk loses its files.
func (s *Store) evictLocked(v *version, i int64) {
	s.forgetChunkLocked(v, i)
	if !v.onDisk {
		return
	}
	if len(v.chunks) == 0 && v.held == 0 {
		s.removeFilesLocked(v)
		return
	}
	if !s.punchLocked(v, i) {
		s.clearLocked(v) // no holes here: the whole file goes
		return
	}
	if err := s.appendLocked(v, entry{index: i, dropped: true}); err != nil {
		s.log.Debug("cache: recording a dropped chunk", "err", err) // its crc fails on its next read
	}
}

// punchLocked frees the disk blocks of chunk i of v. It reports false when
// the file system can't punch holes, and says so once.
func (s *Store) punchLocked(v *version, i int64) bool {
	if s.noPunch {
		return false
	}
	f, err := os.OpenFile(v.data, os.O_WRONLY, 0)
	if err != nil {
		return true // gone already: nothing to free
	}
	defer f.Close()
	if v.writing[i] > 0 {
		v.spoiled[i] = true
	}
	err = punchHole(f, i*s.chunkSize, s.chunkLen(v, i))
	if errors.Is(err, errNoPunch) {
		s.noPunch = true
		s.log.Warn("cache: the file system cannot punch holes; evicting whole files", "dir", s.files)
		return false
	}
	if err != nil {
		s.log.Warn("cache: punching a chunk's hole", "file", filepath.Base(v.data), "err", err)
	}
	return true
}

// clearLocked drops every chunk of v and its files. A version held as a
// backing file keeps its bytes (the holder's descriptor has them) and its
// count against the bound until released.
func (s *Store) clearLocked(v *version) {
	var n int64
	for i := range v.chunks {
		n += s.chunkLen(v, i)
		s.forgetChunkLocked(v, i)
	}
	if v.held > 0 {
		v.gone += n
		s.used += n
	}
	s.removeFilesLocked(v)
}

func (s *Store) removeFilesLocked(v *version) {
	if !v.onDisk {
		return
	}
	os.Remove(v.index)
	os.Remove(v.data)
	os.Remove(filepath.Dir(v.data)) // only if empty
	v.onDisk, v.indexed = false, false
}

// Forget drops every file at or under the remote path prefix and returns
// how many it dropped.
func (s *Store) Forget(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, v := range s.paths {
		if underPrefix(p, prefix) {
			if len(v.chunks) > 0 || v.onDisk {
				n++
			}
			s.clearLocked(v)
			delete(s.paths, p)
		}
	}
	return n
}

func underPrefix(path, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}
