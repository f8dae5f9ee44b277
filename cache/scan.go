package cache

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// scan rebuilds the index from the chunks on disk, least recently used
// first by file mtime. It removes what a crash or an older run left behind:
// temporary files, chunks of the wrong length, files without a valid meta,
// and files cached with another chunk size. A chunk's crc is checked later,
// on its first read.
func (s *store) scan() error {
	type found struct {
		cid   chunkID
		size  int64
		mtime time.Time
	}
	var all []found
	fans, err := os.ReadDir(s.root)
	if err != nil {
		return err
	}
	for _, fan := range fans {
		fanDir := filepath.Join(s.root, fan.Name())
		if !fan.IsDir() || !isHex(fan.Name(), 2) {
			s.removeStray(fanDir)
			continue
		}
		dirs, err := os.ReadDir(fanDir)
		if err != nil {
			return err
		}
		for _, d := range dirs {
			dir := filepath.Join(fanDir, d.Name())
			rec, ok := s.loadMeta(dir, d.Name(), fan.Name())
			if !ok {
				s.removeStray(dir)
				continue
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				return err
			}
			for _, e := range ents {
				name := e.Name()
				if name == metaName {
					continue
				}
				p := filepath.Join(dir, name)
				if strings.Contains(name, tempMark) {
					s.log.Info("cache: removing a file left half-written", "file", p)
					os.Remove(p)
					continue
				}
				i, err := strconv.ParseInt(name, 10, 64)
				info, ierr := e.Info()
				if err != nil || chunkName(i) != name || i < 0 || i >= s.chunks(rec.id.Size) || ierr != nil ||
					!info.Mode().IsRegular() || info.Size() != headerLen+s.chunkLen(rec.id, i) {
					s.log.Warn("cache: removing a damaged chunk", "file", p)
					os.RemoveAll(p)
					continue
				}
				rec.chunks[i] = struct{}{}
				all = append(all, found{chunkID{rec.id.pathHash, i}, info.Size(), info.ModTime()})
			}
			if len(rec.chunks) == 0 {
				os.Remove(filepath.Join(dir, metaName))
				os.Remove(dir)
				continue
			}
			s.files[rec.id.pathHash] = rec
		}
		os.Remove(fanDir) // only if empty
	}
	sort.Slice(all, func(a, b int) bool { return all[a].mtime.Before(all[b].mtime) })
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range all {
		s.index.Add(f.cid, &chunkEntry{size: f.size, touched: f.mtime})
		s.used += f.size
	}
	return nil
}

// loadMeta reads the meta of a file directory and checks that it belongs there.
func (s *store) loadMeta(dir, name, fan string) (*fileRecord, bool) {
	if !isHex(name, 64) || name[:2] != fan {
		return nil, false
	}
	b, err := os.ReadFile(filepath.Join(dir, metaName))
	if err != nil {
		return nil, false
	}
	m, err := decodeMeta(b)
	if err != nil || m.chunkSize != s.chunkSize {
		return nil, false
	}
	id := newFileID(Key{Path: m.path, Size: m.size, ModTime: m.mtime})
	if id.dirName() != name {
		return nil, false
	}
	return &fileRecord{id: id, chunks: map[int64]struct{}{}, metaOnDisk: true}, true
}

func (s *store) removeStray(p string) {
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
