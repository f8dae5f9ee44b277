package fs

import (
	"path"
	"sort"
	"sync"
	"time"

	"mastfs/cache"
	"mastfs/fs/stage"
)

// Prefetcher is what Contents may also offer: fetch the first n bytes of a
// file ahead of any reader, at low priority, without waiting for them.
type Prefetcher interface {
	Prefetch(k cache.Key, n int64)
}

// Bounds of a directory-order prefetch. Far from the server each cold file
// costs a round trip or more, one file after another; a few files fetched
// side by side over the pool hide them. Files ahead are bounded so that
// what a stopping reader leaves unread stays small.
const (
	seqRun   = 3        // files opened in order before any is fetched ahead
	seqFiles = 8        // files fetched ahead of the reader, at most
	seqBytes = 16 << 20 // bytes fetched ahead of the reader, at most
	seqSmall = 4 << 20  // a file this small is fetched whole
	seqHead  = 1 << 20  // of a larger one, this much: its first headers
)

// seqLen is how much of a file of size bytes is fetched ahead.
func seqLen(size int64) int64 {
	if size <= seqSmall {
		return size
	}
	return seqHead
}

// sequence notices the files of one directory opened one after another in
// listing order, as cp -r, rsync, a loop over a sorted glob and "mastfs
// prefetch" open them, and says which files to fetch ahead: one once
// seqRun files open in order, then twice as many at each file while the
// order holds, within seqFiles and seqBytes. Any other open (another file of the
// directory, another directory) ends the run at once; random access fetches
// nothing ahead. Reopening the file last opened changes nothing.
//
// One sequence serves the whole mount: a copy opens one directory at a
// time, and two walks at once break each other's runs, which errs on the
// side of fetching nothing.
type sequence struct {
	mu     sync.Mutex    // guards every field below
	dir    string        // directory of the run
	ver    time.Time     // the listing order was built from
	order  []stage.Entry // dir's regular files, by name
	pos    int           // index in order of the file opened last; -1: none
	run    int           // files opened in order up to pos
	window int           // files ahead the run has earned
	reach  int           // files up to this index were fetched ahead
}

// open records that name was opened in dir, whose listing (ents, fetched
// at ver) is in memory, and returns the files to fetch ahead now.
func (s *sequence) open(dir string, ver time.Time, ents map[string]stage.Entry, name string) []stage.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if dir != s.dir || !ver.Equal(s.ver) {
		s.dir, s.ver, s.order = dir, ver, files(ents)
		s.pos, s.run, s.window, s.reach = -1, 0, 0, -1
	}
	i := sort.Search(len(s.order), func(i int) bool { return s.order[i].Name >= name })
	switch {
	case i == len(s.order) || s.order[i].Name != name:
		s.pos, s.run, s.window, s.reach = -1, 0, 0, -1 // not a file of the listing
		return nil
	case i == s.pos:
		return nil
	case s.pos < 0 || i != s.pos+1:
		s.pos, s.run, s.window, s.reach = i, 1, 0, i
		return nil
	}
	s.pos = i
	s.run++
	if s.run < seqRun {
		s.reach = i
		return nil
	}
	s.window = min(max(1, 2*s.window), seqFiles)
	from := max(i+1, s.reach+1) // files before from are on their way already
	var ahead int64
	for _, e := range s.order[i+1 : from] {
		ahead += seqLen(e.Size)
	}
	to := from
	for to < len(s.order) && to <= i+s.window {
		n := seqLen(s.order[to].Size)
		if ahead+n > seqBytes {
			break
		}
		ahead += n
		to++
	}
	s.reach = max(s.reach, to-1)
	return s.order[from:to]
}

// files are the regular files of a listing, by name.
func files(ents map[string]stage.Entry) []stage.Entry {
	out := make([]stage.Entry, 0, len(ents))
	for _, e := range ents {
		if e.Type == stage.File {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// opened feeds the open of f to the mount's sequence and fetches ahead
// what it says, when Contents can prefetch. It never waits on the server.
func (t *tree) opened(f *fileNode) {
	p, ok := t.contents.(Prefetcher)
	if !ok {
		return
	}
	_, parent := f.Parent()
	if parent == nil {
		return
	}
	dn, ok := parent.Operations().(interface{ seqDir() *dirNode })
	if !ok {
		return
	}
	d := dn.seqDir()
	d.mu.Lock()
	ents, ver := d.entries, d.fetched
	d.mu.Unlock()
	if ents == nil {
		return
	}
	for _, e := range t.seq.open(d.remote, ver, ents, path.Base(f.remote)) {
		if e.Size > 0 {
			p.Prefetch(cache.Key{Path: path.Join(d.remote, e.Name), Size: e.Size, ModTime: e.ModTime}, seqLen(e.Size))
		}
	}
}

// seqDir is the directory node itself, for Root as for any other directory.
func (d *dirNode) seqDir() *dirNode { return d }
