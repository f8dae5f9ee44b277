package cache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"sync"
	"testing"
	"time"

	"mastfs/ftps/stagegen"
)

// bytesRemote serves files given as bytes, each stream after a fixed delay
// (a round trip), and records where each stream started.
type bytesRemote struct {
	delay time.Duration

	mu      sync.Mutex // guards files, offsets, active
	files   map[string][]byte
	offsets map[string][]int64
	active  int
}

func newBytesRemote(delay time.Duration) *bytesRemote {
	return &bytesRemote{delay: delay, files: map[string][]byte{}, offsets: map[string][]int64{}}
}

func (r *bytesRemote) add(path string, b []byte) Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[path] = b
	return Key{Path: path, Size: int64(len(b)), ModTime: time.Unix(1700000000, 0)}
}

func (r *bytesRemote) ReadAt(ctx context.Context, path string, off int64) (io.ReadCloser, error) {
	select {
	case <-time.After(r.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.files[path]
	if !ok {
		return nil, fs.ErrNotExist
	}
	r.offsets[path] = append(r.offsets[path], off)
	r.active++
	return &bytesStream{r: r, Reader: bytes.NewReader(b[min(off, int64(len(b))):])}, nil
}

// streams returns the offsets the streams of path started at, sorted.
func (r *bytesRemote) streams(path string) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]int64(nil), r.offsets[path]...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

type bytesStream struct {
	r *bytesRemote
	*bytes.Reader
}

func (s *bytesStream) Close() error {
	s.r.mu.Lock()
	s.r.active--
	s.r.mu.Unlock()
	return nil
}

// mef is a multi-extension FITS file: a primary header of three blocks and
// n image extensions of dataLen bytes each, so that with testChunk chunks
// each header lies in a chunk of its own. It returns the file and where
// each header starts.
func mef(t testing.TB, n, dataLen int) ([]byte, []int64) {
	t.Helper()
	filler := make([]stagegen.Card, 98) // with the mandatory cards and END: three blocks
	for i := range filler {
		filler[i] = stagegen.Card{Key: fmt.Sprintf("K%04d", i), Value: i}
	}
	hdus := []stagegen.Image{{Cards: filler}}
	for i := range n {
		hdus = append(hdus, stagegen.Image{Extension: true, BITPIX: 8, Axes: []int{dataLen},
			Cards: append([]stagegen.Card{{Key: "EXTNAME", Value: "SCI"}, {Key: "EXTVER", Value: i + 1}}, filler...),
			Data:  bytes.NewReader(bytes.Repeat([]byte{byte(i + 1)}, dataLen))})
	}
	var b bytes.Buffer
	if _, err := stagegen.WriteFITS(&b, hdus...); err != nil {
		t.Fatal(err)
	}
	var heads []int64
	off := int64(0)
	for _, h := range hdus {
		heads = append(heads, off)
		off += h.Size()
	}
	return b.Bytes(), heads
}

// chunksOf returns the chunk starts that hold the headers at heads (each
// header is 2 or 3 blocks: the walk reads them all).
func chunksOf(heads []int64, headerLen int64) []int64 {
	seen := map[int64]bool{}
	var out []int64
	for _, h := range heads {
		for _, off := range []int64{h, h + headerLen - 1} {
			c := off / testChunk * testChunk
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// A reader's first read of a FITS file starts a walk of its headers: each
// header's chunk is fetched once, by one stream, before the reader's hop
// gets there, and no chunk of data alone is fetched. The reader's chain
// of hops then costs no round trip at all.
func TestWalkFetchesHeadersAhead(t *testing.T) {
	r := newBytesRemote(10 * time.Millisecond)
	file, heads := mef(t, 6, 3*testChunk+1000)
	k := r.add("/stage/x_flt.fits", file)
	c := openCache(t, t.TempDir(), r, quick)
	p := make([]byte, stagegen.BlockSize)
	if _, err := c.ReadAt(context.Background(), k, p, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "walk done", func() bool { return c.pre.walking.Load() == 0 && c.pre.walks.Load() == 1 })
	waitIdle(t, c)
	want := chunksOf(heads, 3*stagegen.BlockSize)
	if got := r.streams(k.Path); len(got) > len(want) {
		t.Fatalf("streams started at %v, want at most one for each header's chunk %v", got, want)
	}
	isHead := map[int64]bool{}
	for _, off := range want {
		isHead[off/testChunk] = true
	}
	for i := int64(0); i*testChunk < k.Size; i++ {
		if f, _ := c.store.Missing(k, i, i+1); (f < 0) != isHead[i] {
			t.Errorf("chunk %d: cached %v, holds a header %v", i, f < 0, isHead[i])
		}
	}
	before := c.Stats()
	for _, h := range heads { // the reader's hops: each header, block by block
		for off := h; off < h+3*stagegen.BlockSize; off += stagegen.BlockSize {
			if _, err := c.ReadAt(context.Background(), k, p, off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p, file[off:off+stagegen.BlockSize]) {
				t.Fatalf("bytes at %d differ", off)
			}
		}
	}
	if st := c.Stats(); st.Misses != before.Misses || st.StreamsOpened != before.StreamsOpened {
		t.Fatalf("the reader's hops after the walk: %+v, before %+v", st, before)
	}
	if _, _, walks := c.PrefetchStats(); walks != 1 {
		t.Errorf("%d walks, want one per file version", walks)
	}
}

// A file prefetched has its headers walked as well.
func TestPrefetchWalksFITS(t *testing.T) {
	r := newBytesRemote(5 * time.Millisecond)
	file, heads := mef(t, 3, 2*testChunk)
	k := r.add("/stage/y_cal.fits", file)
	c := openCache(t, t.TempDir(), r, quick)
	c.Prefetch(k, testChunk)
	waitFor(t, "walk done", func() bool { return c.pre.walks.Load() == 1 && c.pre.walking.Load() == 0 })
	waitIdle(t, c)
	for _, h := range chunksOf(heads, 3*stagegen.BlockSize) {
		if f, _ := c.store.Missing(k, h/testChunk, h/testChunk+1); f >= 0 {
			t.Errorf("header chunk at %d not cached", h)
		}
	}
}

// The walk stops at a header it cannot follow, and the reader still gets
// exactly the server's bytes, no error.
func TestWalkStopsSilently(t *testing.T) {
	good, heads := mef(t, 3, 2*testChunk)
	patch := func(at int64, s string) []byte {
		b := bytes.Clone(good)
		copy(b[at:], s)
		return b
	}
	card := func(key, value string) string { return fmt.Sprintf("%-8s= %20s", key, value) }
	second := heads[2] // the second extension's header
	tests := map[string][]byte{
		"malformed":     patch(second+80, card("BITPIX", "7")),
		"no END":        bytes.ReplaceAll(bytes.Clone(good), []byte("END     "), []byte("COMMENT ")),
		"overflow":      patch(second+3*80, card("NAXIS1", "9223372036854775807")),
		"short":         good[:second+3*stagegen.BlockSize+100],
		"not FITS next": patch(second, "XTENSIOM"),
	}
	for name, file := range tests {
		t.Run(name, func(t *testing.T) {
			r := newBytesRemote(0)
			k := r.add("/stage/bad.fits", file)
			c := openCache(t, t.TempDir(), r, quick)
			got := make([]byte, len(file))
			for off := 0; off < len(file); off += 5000 {
				end := min(off+5000, len(file))
				n, err := c.ReadAt(context.Background(), k, got[off:end], int64(off))
				if n != end-off || (err != nil && err != io.EOF) {
					t.Fatalf("read at %d: %d, %v", off, n, err)
				}
			}
			if !bytes.Equal(got, file) {
				t.Fatal("the reader got other bytes than the server's")
			}
			waitFor(t, "walk done", func() bool { return c.pre.walking.Load() == 0 })
			if _, _, walks := c.PrefetchStats(); walks != 1 {
				t.Errorf("%d walks", walks)
			}
		})
	}
}

// A file that is not FITS, or fits in one chunk, is not walked.
func TestWalkOnlyFITS(t *testing.T) {
	r := newBytesRemote(0)
	file, _ := mef(t, 2, 2*testChunk)
	other := r.add("/stage/other.dat", append([]byte("SIMPLE ="), file[8:]...))
	small := r.add("/stage/small.fits", file[:testChunk])
	c := openCache(t, t.TempDir(), r, quick)
	p := make([]byte, 100)
	for _, k := range []Key{other, small} {
		if _, err := c.ReadAt(context.Background(), k, p, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, walks := c.PrefetchStats(); walks != 0 {
		t.Fatalf("%d walks of files that are not FITS or fit in a chunk", walks)
	}
}

// The walk a reader's read starts fetches as the reader would: streams
// lingering for a follow-up read give their slots up to it, so it does not
// wait for their idle timeout (a minute here) with the reader's next hop.
func TestReaderWalkTakesLingeringSlots(t *testing.T) {
	r := newBytesRemote(0)
	file, heads := mef(t, 3, 2*testChunk)
	k := r.add("/stage/z_flt.fits", file)
	other := r.add("/stage/other.dat", bytes.Repeat([]byte("x"), 3*testChunk))
	c := openCache(t, t.TempDir(), r, func(cfg *Config) { cfg.Streams = 2; cfg.IdleTimeout = time.Minute })
	p := make([]byte, stagegen.BlockSize)
	for _, k := range []Key{other, k} { // two streams lingering after reads at 0: every slot
		if _, err := c.ReadAt(context.Background(), k, p, 0); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "walk done", func() bool { return c.pre.walks.Load() == 1 && c.pre.walking.Load() == 0 })
	for _, h := range chunksOf(heads, 3*stagegen.BlockSize) {
		if f, _ := c.store.Missing(k, h/testChunk, h/testChunk+1); f >= 0 {
			t.Errorf("header chunk at %d not cached", h)
		}
	}
}

// Once a file's headers are walked, a hop of a FITS reader, even one the
// kernel's read-ahead carries past the header's end, fetches no data
// chunks ahead; a reader that goes on through the data gets its
// read-ahead back, and reads the whole file right in few streams.
func TestHopReadsNoDataAhead(t *testing.T) {
	r := newBytesRemote(0)
	file, heads := mef(t, 4, 6*testChunk)
	k := r.add("/stage/hops_flt.fits", file)
	c := openCache(t, t.TempDir(), r, quick)
	p := make([]byte, 32<<10)
	if _, err := c.ReadAt(context.Background(), k, p[:stagegen.BlockSize], 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "walk done", func() bool { return c.pre.walks.Load() == 1 && c.pre.walking.Load() == 0 })
	waitIdle(t, c)
	allowed := map[int64]bool{}
	for _, h := range heads {
		last := (h + 3*stagegen.BlockSize - 1) / testChunk
		// A hop, and the kernel's read-ahead on to the end of the next chunk.
		for off := h; off < min((last+2)*testChunk, k.Size); off += int64(len(p)) {
			n, err := c.ReadAt(context.Background(), k, p, off)
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			for i := off / testChunk; i <= (off+int64(n)-1)/testChunk; i++ {
				allowed[i] = true // what the hop reads itself
			}
			if !bytes.Equal(p[:n], file[off:off+int64(n)]) {
				t.Fatalf("bytes at %d differ", off)
			}
		}
	}
	waitIdle(t, c)
	for i := int64(0); i*testChunk < k.Size; i++ {
		if f, _ := c.store.Missing(k, i, i+1); f < 0 && !allowed[i] {
			t.Errorf("chunk %d of data fetched ahead of hops (streams at %v)", i, r.streams(k.Path))
		}
	}
	before := c.Stats().StreamsOpened
	got := make([]byte, len(file))
	for off := 0; off < len(file); off += len(p) {
		n, err := c.ReadAt(context.Background(), k, got[off:min(off+len(p), len(file))], int64(off))
		if err != nil && err != io.EOF || n == 0 {
			t.Fatalf("read at %d: %d, %v", off, n, err)
		}
	}
	if !bytes.Equal(got, file) {
		t.Fatal("a sequential read differs from the server's bytes")
	}
	if streams := c.Stats().StreamsOpened - before; streams > int64(len(heads)) {
		t.Errorf("a sequential read after the hops opened %d streams, want at most one per unit (%d)", streams, len(heads))
	}
}
