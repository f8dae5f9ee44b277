package fs

import (
	"path"
	"slices"
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
// the directory's order, and says which files to fetch ahead: one once
// seqRun files open in order, then twice as many at each file while the
// order holds, within seqFiles and seqBytes. Two orders count: by name, as
// rsync, a loop over a sorted glob and "mastfs prefetch" open files, and by
// inode number, as cp -r does (GNU cp sorts a directory's entries by d_ino
// before copying them, and ours are hashes). Any other open (another file
// of the directory, another directory) ends a run at once; random access
// fetches nothing ahead. Reopening the file last opened changes nothing.
//
// One sequence serves the whole mount: a copy opens one directory at a
// time, and two walks at once break each other's runs, which errs on the
// side of fetching nothing.
type sequence struct {
	mu     sync.Mutex // guards every field below
	dir    string     // directory of the runs
	ver    time.Time  // the listing the orders were built from
	tracks [2]track   // by name, by inode number
}

// track follows the opens of a directory's files in one order.
type track struct {
	order  []stage.Entry  // the directory's regular files
	index  map[string]int // name to its index in order
	pos    int            // index of the file opened last; -1: none
	run    int            // files opened in order up to pos
	window int            // files ahead the run has earned
	reach  int            // files up to this index were fetched ahead
}

// open records that name was opened in dir, whose listing (ents, fetched
// at ver) is in memory, and returns the files to fetch ahead now.
func (s *sequence) open(dir string, ver time.Time, ents map[string]stage.Entry, name string) []stage.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if dir != s.dir || !ver.Equal(s.ver) {
		s.dir, s.ver = dir, ver
		byName := files(ents)
		byIno := slices.Clone(byName)
		sort.SliceStable(byIno, func(i, j int) bool {
			return ino(path.Join(dir, byIno[i].Name), byIno[i]) < ino(path.Join(dir, byIno[j].Name), byIno[j])
		})
		s.tracks[0], s.tracks[1] = newTrack(byName), newTrack(byIno)
	}
	var out []stage.Entry
	for k := range s.tracks {
		for _, e := range s.tracks[k].open(name) {
			if !slices.ContainsFunc(out, func(x stage.Entry) bool { return x.Name == e.Name }) {
				out = append(out, e)
			}
		}
	}
	return out
}

func newTrack(order []stage.Entry) track {
	t := track{order: order, index: make(map[string]int, len(order)), pos: -1, reach: -1}
	for i, e := range order {
		t.index[e.Name] = i
	}
	return t
}

// open records an open of name and returns the files to fetch ahead now.
func (t *track) open(name string) []stage.Entry {
	i, ok := t.index[name]
	switch {
	case !ok:
		t.pos, t.run, t.window, t.reach = -1, 0, 0, -1 // not a file of the listing
		return nil
	case i == t.pos:
		return nil
	case t.pos < 0 || i != t.pos+1:
		t.pos, t.run, t.window, t.reach = i, 1, 0, i
		return nil
	}
	t.pos = i
	t.run++
	if t.run < seqRun {
		t.reach = i
		return nil
	}
	t.window = min(max(1, 2*t.window), seqFiles)
	from := max(i+1, t.reach+1) // files before from are on their way already
	var ahead int64
	for _, e := range t.order[i+1 : from] {
		ahead += seqLen(e.Size)
	}
	to := from
	for to < len(t.order) && to <= i+t.window {
		n := seqLen(t.order[to].Size)
		if ahead+n > seqBytes {
			break
		}
		ahead += n
		to++
	}
	t.reach = max(t.reach, to-1)
	return t.order[from:to]
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
