package fs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mastfs/cache"
	"mastfs/fs/stage"
)

// listingOf makes a directory of n files named f000.fits... of size bytes
// each, with a subdirectory and a link among them.
func listingOf(n int, size int64) map[string]stage.Entry {
	m := map[string]stage.Entry{
		"f000.5": {Name: "f000.5", Type: stage.Dir},
		"f001.5": {Name: "f001.5", Type: stage.Link, Target: "f000.fits"},
	}
	for i := range n {
		name := fmt.Sprintf("f%03d.fits", i)
		m[name] = stage.Entry{Name: name, Type: stage.File, Size: size, ModTime: time.Unix(int64(1e9+i), 0)}
	}
	return m
}

func seqNames(es []stage.Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, strings.TrimSuffix(e.Name, ".fits"))
	}
	return strings.Join(s, " ")
}

func TestSequenceInOrder(t *testing.T) {
	ents := listingOf(30, 10<<10)
	var s sequence
	ver := time.Unix(5, 0)
	want := []string{
		"", "", // a run begins with seqRun files in order
		"f003",                         // the third fetches one ahead
		"f004 f005",                    // then twice as many
		"f006 f007 f008",               // four ahead of f004
		"f009 f010 f011 f012 f013",     // eight ahead of f005: seqFiles
		"f014", "f015", "f016", "f017", // then one more per file
	}
	for i, w := range want {
		got := seqNames(s.open("/d", ver, ents, fmt.Sprintf("f%03d.fits", i)))
		if got != w {
			t.Errorf("open f%03d: ahead %q, want %q", i, got, w)
		}
	}
	if got := s.open("/d", ver, ents, "f009.fits"); got != nil {
		t.Errorf("reopening the file opened last fetched %q", seqNames(got))
	}
	if got := s.open("/d", ver, ents, "f005.fits"); got != nil {
		t.Errorf("a step back fetched %q", seqNames(got))
	}
	for i := 10; i < 12; i++ {
		if got := s.open("/d", ver, ents, fmt.Sprintf("f%03d.fits", i)); got != nil {
			t.Errorf("a new run fetched ahead before %d files in order: %q", seqRun, seqNames(got))
		}
	}
	// To the end of the listing: nothing past its last file.
	var last []stage.Entry
	for i := 12; i < 30; i++ {
		last = append(last, s.open("/d", ver, ents, fmt.Sprintf("f%03d.fits", i))...)
	}
	if len(last) == 0 || last[len(last)-1].Name != "f029.fits" {
		t.Errorf("run to the end fetched %q", seqNames(last))
	}
}

func TestSequenceShuffledFetchesNothing(t *testing.T) {
	ents := listingOf(200, 10<<10)
	var s sequence
	r := rand.New(rand.NewPCG(1, 2))
	order := r.Perm(200)
	for k, i := range order {
		if got := s.open("/d", time.Unix(5, 0), ents, fmt.Sprintf("f%03d.fits", i)); got != nil {
			// A shuffle may hold seqRun files in a row by chance; this one must not.
			t.Fatalf("open %d of a shuffled walk (f%03d): fetched ahead %q", k, i, seqNames(got))
		}
	}
	// Random opens of one file (a notebook reopening it) fetch nothing either.
	for range 20 {
		if got := s.open("/d", time.Unix(5, 0), ents, "f100.fits"); got != nil {
			t.Fatalf("reopening one file fetched ahead %q", seqNames(got))
		}
	}
}

func TestSequenceBreaks(t *testing.T) {
	ents := listingOf(40, 10<<10)
	ver := time.Unix(5, 0)
	run := func(s *sequence, from, to int) string {
		var got []stage.Entry
		for i := from; i < to; i++ {
			got = append(got, s.open("/d", ver, ents, fmt.Sprintf("f%03d.fits", i))...)
		}
		return seqNames(got)
	}
	tests := []struct {
		name   string
		break_ func(s *sequence)
	}{
		{"another directory", func(s *sequence) { s.open("/e", ver, listingOf(3, 1), "f000.fits") }},
		{"a new listing", func(s *sequence) { s.open("/d", ver.Add(time.Minute), ents, "f005.fits") }},
		{"a name not listed", func(s *sequence) { s.open("/d", ver, ents, "gone.fits") }},
		{"a link", func(s *sequence) { s.open("/d", ver, ents, "f001.5") }},
		{"a step back", func(s *sequence) { s.open("/d", ver, ents, "f002.fits") }},
		{"a skip", func(s *sequence) { s.open("/d", ver, ents, "f007.fits") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s sequence
			if got := run(&s, 0, 5); got == "" {
				t.Fatal("no run")
			}
			tt.break_(&s)
			if got := run(&s, 20, 20+seqRun-1); got != "" {
				t.Errorf("after the break, %d files in order fetched %q", seqRun-1, got)
			}
			if got := run(&s, 20+seqRun-1, 20+seqRun); got != "f023" {
				t.Errorf("a new run fetched %q, want f023", got)
			}
		})
	}
}

func TestSequenceBudget(t *testing.T) {
	for _, tc := range []struct {
		size       int64
		files, len int64
	}{
		{10 << 10, seqFiles, 10 << 10},            // small files: seqFiles whole files
		{seqSmall, seqBytes / seqSmall, seqSmall}, // 4 MiB files: seqBytes binds
		{1 << 30, seqFiles, seqHead},              // big files: their heads
		{0, seqFiles, 0},
	} {
		var s sequence
		ents := listingOf(40, tc.size)
		var ahead []stage.Entry
		pos := 0
		for ; pos < 20; pos++ {
			ahead = append(ahead, s.open("/d", time.Unix(5, 0), ents, fmt.Sprintf("f%03d.fits", pos))...)
		}
		n := ahead[len(ahead)-1].Name
		var past int64
		fmt.Sscanf(n, "f%03d.fits", &past)
		if got := past - int64(pos-1); got != tc.files {
			t.Errorf("files of %d bytes: %d ahead of the reader, want %d", tc.size, got, tc.files)
		}
		if got := seqLen(tc.size); got != tc.len {
			t.Errorf("files of %d bytes: %d fetched of each, want %d", tc.size, got, tc.len)
		}
	}
}

// seqContents records what a tree asks it to fetch ahead.
type seqContents struct {
	mu     sync.Mutex
	asked  []cache.Key
	counts []int64
}

func (c *seqContents) ReadAt(ctx context.Context, k cache.Key, p []byte, off int64) (int, error) {
	return 0, fs.ErrInvalid
}
func (c *seqContents) Forget(string) error                            { return nil }
func (c *seqContents) PutRecord(kind, name string, data []byte) error { return nil }
func (c *seqContents) GetRecord(kind, name string) ([]byte, error)    { return nil, fs.ErrNotExist }
func (c *seqContents) Prefetch(k cache.Key, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = append(c.asked, k)
	c.counts = append(c.counts, n)
}

type seqLister map[string][]stage.Entry

func (l seqLister) List(ctx context.Context, dir string) ([]stage.Entry, error) {
	if es, ok := l[dir]; ok {
		return es, nil
	}
	return nil, fs.ErrNotExist
}

// TestOpenInListingOrderPrefetches opens files through the FUSE bridge, as
// the kernel would: in listing order they are fetched ahead with their
// listed size and time; shuffled, nothing is.
func TestOpenInListingOrderPrefetches(t *testing.T) {
	var list []stage.Entry
	for _, e := range listingOf(40, 3000) {
		list = append(list, e)
	}
	for _, tc := range []struct {
		name  string
		order []int
		want  int
	}{
		{"listing order", seqIndexes(0, 12), 12 + seqFiles - seqRun},
		{"shuffled", []int{7, 3, 11, 0, 9, 5, 1, 10, 2, 8, 4, 6}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &seqContents{}
			root := NewRoot(seqLister{"/stage": list}, c, Options{RemoteDir: "/stage"})
			raw := gofs.NewNodeFS(root, &gofs.Options{})
			for _, i := range tc.order {
				name := fmt.Sprintf("f%03d.fits", i)
				var out fuse.EntryOut
				if st := raw.Lookup(nil, &fuse.InHeader{NodeId: fuse.FUSE_ROOT_ID}, name, &out); st != fuse.OK {
					t.Fatalf("lookup %s: %v", name, st)
				}
				var oo fuse.OpenOut
				in := &fuse.OpenIn{InHeader: fuse.InHeader{NodeId: out.NodeId}, Flags: syscall.O_RDONLY}
				if st := raw.Open(nil, in, &oo); st != fuse.OK {
					t.Fatalf("open %s: %v", name, st)
				}
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.asked) != tc.want {
				t.Fatalf("%d files fetched ahead, want %d: %v", len(c.asked), tc.want, c.asked)
			}
			for i, k := range c.asked {
				want := fmt.Sprintf("/stage/f%03d.fits", seqRun+i)
				if k.Path != want || k.Size != 3000 || !k.ModTime.Equal(time.Unix(int64(1e9+seqRun+i), 0)) || c.counts[i] != 3000 {
					t.Errorf("fetched ahead %v, %d bytes; want %s of 3000 bytes, whole", k, c.counts[i], want)
				}
			}
		})
	}
}

func seqIndexes(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return slices.Clip(out)
}

// cp -r opens a directory's files by inode number: that order is a run too.
func TestSequenceInodeOrder(t *testing.T) {
	ents := listingOf(30, 10<<10)
	byIno := files(ents)
	sort.Slice(byIno, func(i, j int) bool {
		return ino(path.Join("/d", byIno[i].Name), byIno[i]) < ino(path.Join("/d", byIno[j].Name), byIno[j])
	})
	var s sequence
	var got []stage.Entry
	for _, e := range byIno[:10] {
		got = append(got, s.open("/d", time.Unix(5, 0), ents, e.Name)...)
	}
	if len(got) != 10-seqRun+seqFiles {
		t.Fatalf("fetched %d ahead, want %d", len(got), 10-seqRun+seqFiles)
	}
	for i, e := range got {
		if e.Name != byIno[seqRun+i].Name {
			t.Fatalf("fetched %s %d-th, want %s: inode order", e.Name, i, byIno[seqRun+i].Name)
		}
	}
}

// slowRemote serves files from memory to a cache, each stream after a
// fixed delay (a round trip), and counts the streams of each path.
type slowRemote struct {
	delay time.Duration

	mu    sync.Mutex // guards files, opens
	files map[string][]byte
	opens map[string]int
}

func (r *slowRemote) ReadAt(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	rtt := time.NewTimer(r.delay)
	defer rtt.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-rtt.C:
	}
	r.mu.Lock()
	b, ok := r.files[p]
	r.opens[p]++
	r.mu.Unlock()
	if !ok {
		return nil, fs.ErrNotExist
	}
	return io.NopCloser(bytes.NewReader(b[min(off, int64(len(b))):])), nil
}

// Through the kernel and the real cache: cp -r of a directory, and a loop
// reading its files by name, fetch files ahead and read each file from
// the remote once, byte for byte; reading them shuffled fetches nothing
// ahead.
func TestPrefetchThroughKernel(t *testing.T) {
	const n = 40
	r := &slowRemote{delay: 5 * time.Millisecond, files: map[string][]byte{}, opens: map[string]int{}}
	l := newLister()
	var ents []stage.Entry
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range n {
		name := fmt.Sprintf("p%03d_flt.fits", i)
		b := make([]byte, 3000+rng.IntN(30000))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		e := stage.Entry{Name: name, Type: stage.File, Size: int64(len(b)), ModTime: mtime}
		ents = append(ents, e)
		for _, d := range []string{"copy", "names", "shuffled"} {
			r.files["/stage/"+d+"/"+name] = b
		}
	}
	for _, d := range []string{"copy", "names", "shuffled"} {
		l.set("/stage/"+d, ents...)
	}
	l.set("/stage", dir("copy"), dir("names"), dir("shuffled"))
	c, err := cache.Open(cache.Config{Dir: t.TempDir(), ChunkSize: 64 << 10, Streams: 4, Logger: testLogger(t)}, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	mnt, _ := mountTree(t, l, c, Options{RemoteDir: "/stage"})

	check := func(d string, got func(name string) []byte) {
		t.Helper()
		for _, e := range ents {
			if !bytes.Equal(got(e.Name), r.files["/stage/"+d+"/"+e.Name]) {
				t.Fatalf("%s/%s differs from the server's", d, e.Name)
			}
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, e := range ents {
			if k := r.opens["/stage/"+d+"/"+e.Name]; k != 1 {
				t.Errorf("%s/%s fetched by %d streams, want 1", d, e.Name, k)
			}
		}
	}
	prefetched := func() int64 { f, _, _ := c.PrefetchStats(); return f }

	dst := t.TempDir()
	if out, err := exec.Command("cp", "-r", filepath.Join(mnt, "copy"), dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -r: %v\n%s", err, out)
	}
	check("copy", func(name string) []byte { return readFile(t, filepath.Join(dst, "copy", name)) })
	afterCopy := prefetched()
	if afterCopy == 0 {
		t.Error("cp -r fetched no file ahead")
	}

	check("names", func(name string) []byte { return readFile(t, filepath.Join(mnt, "names", name)) })
	afterNames := prefetched()
	if afterNames == afterCopy {
		t.Error("reading files by name fetched no file ahead")
	}

	shuffled := map[string][]byte{}
	for _, i := range []int{17, 3, 29, 11, 38, 0, 22, 8, 33, 14, 5, 26, 36, 19, 1, 31, 9, 24, 39, 12,
		6, 28, 16, 35, 2, 21, 10, 32, 18, 37, 4, 25, 13, 30, 7, 23, 34, 15, 27, 20} {
		name := ents[i].Name
		shuffled[name] = readFile(t, filepath.Join(mnt, "shuffled", name))
	}
	check("shuffled", func(name string) []byte { return shuffled[name] })
	if got := prefetched(); got != afterNames {
		t.Errorf("a shuffled walk fetched %d files ahead", got-afterNames)
	}
}
