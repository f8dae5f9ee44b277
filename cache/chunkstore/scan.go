package chunkstore

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// scan rebuilds the index from the files on disk, least recently used
// first by data file mtime. It removes what a crash or an older run left
// behind: temporary files, data files without a valid index and indexes
// without their data file, files cut with another chunk size, older
// versions of a path. An index whose tail a crash cut short is rewritten
// from its whole entries. A chunk's crc is checked later, on its first read.
func (s *Store) scan() error {
	fans, err := os.ReadDir(s.files)
	if err != nil {
		return err
	}
	var all []*version
	for _, fan := range fans {
		fanDir := filepath.Join(s.files, fan.Name())
		if !fan.IsDir() || !isHex(fan.Name(), 2) {
			s.removeStray(fanDir)
			continue
		}
		ents, err := os.ReadDir(fanDir)
		if err != nil {
			return err
		}
		kept := map[string]bool{}
		for _, e := range ents {
			name, ok := strings.CutSuffix(e.Name(), indexExt)
			if !ok || !isHex(name, 64) || name[:2] != fan.Name() {
				continue
			}
			if v := s.load(name); v != nil {
				all = append(all, v)
				kept[name] = true
			}
		}
		for _, e := range ents {
			name := strings.TrimSuffix(strings.TrimSuffix(e.Name(), dataExt), indexExt)
			switch {
			case kept[name]:
			case strings.Contains(e.Name(), tempMark):
				s.log.Info("cache: removing a file left half-written", "file", e.Name())
				os.Remove(filepath.Join(fanDir, e.Name()))
			case e.Name() == name+dataExt && isHex(name, 64):
				// Its first chunk was being written when the process died.
				s.log.Info("cache: removing a cached file that can't be used", "file", name, "why", "no index")
				os.Remove(filepath.Join(fanDir, e.Name()))
			default:
				s.removeStray(filepath.Join(fanDir, e.Name()))
			}
		}
		os.Remove(fanDir) // only if empty
	}
	sort.Slice(all, func(a, b int) bool { return all[a].touched.Before(all[b].touched) })
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range all {
		if old := s.paths[v.key.Path]; old != nil {
			// Two versions of one path: a crash between writing the new and
			// removing the old. The one used last stays.
			s.clearLocked(old)
		}
		s.paths[v.key.Path] = v
		for i := range v.nchunks {
			if c := v.chunks[i]; c != nil {
				s.lru.Add(ref{v, i}, c)
				s.used += s.chunkLen(v, i)
				s.nchunks++
			}
		}
	}
	return nil
}

// load reads the version whose files are named name, or returns nil when
// they can't be used (and removes them).
func (s *Store) load(name string) *version {
	data, index := versionPaths(s.files, name)
	drop := func(why string) *version {
		s.log.Info("cache: removing a cached file that can't be used", "file", name, "why", why)
		os.Remove(data)
		os.Remove(index)
		return nil
	}
	b, err := os.ReadFile(index)
	if err != nil {
		return drop("index unreadable")
	}
	h, n, err := decodeIndexHeader(b)
	if err != nil || h.chunkSize != s.chunkSize || versionName(h.key) != name {
		return drop("index header")
	}
	info, err := os.Lstat(data)
	if err != nil || !info.Mode().IsRegular() || info.Size() != h.key.Size {
		return drop("data file")
	}
	v := s.newVersion(h.key)
	v.onDisk, v.indexed, v.touched = true, true, info.ModTime()
	found, whole := decodeEntries(b[n:], v.nchunks)
	if len(found) == 0 {
		return drop("no chunks")
	}
	for i, crc := range found {
		v.chunks[i] = &chunk{crc: crc}
	}
	v.entries = (len(b) - n) / entryLen
	if !whole || v.entries != len(found) {
		if err := s.rewriteIndexLocked(v); err != nil {
			s.log.Debug("cache: rewriting an index", "file", name, "err", err)
			if !whole {
				return drop("index cut short and not rewritable")
			}
		}
		os.Chtimes(data, v.touched, v.touched) // keep its place in the LRU
	}
	return v
}

func (s *Store) removeStray(p string) {
	s.log.Info("cache: removing what no current file owns", "path", p)
	os.RemoveAll(p)
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}
