package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeRemote serves generated files and counts what it serves: streams
// opened, streams open at once, and bytes handed to readers. It can add
// latency, a bandwidth limit, short reads and errors.
type fakeRemote struct {
	mu        sync.Mutex // guards every field below
	files     map[string]fakeFile
	opened    int
	offsets   []int64 // offset of each stream opened
	served    int64
	active    int
	maxActive int

	openDelay   time.Duration    // before a stream starts
	bytesPerSec int64            // 0: unlimited
	maxRead     int              // > 0: each Read returns at most this many bytes
	failOpen    map[string]error // path -> error from ReadAt
	truncate    map[string]int64 // path -> the stream ends here, short of the size
}

type fakeFile struct {
	size int64
	seed uint64
}

func newFake() *fakeRemote {
	return &fakeRemote{files: map[string]fakeFile{}, failOpen: map[string]error{}, truncate: map[string]int64{}}
}

func (r *fakeRemote) add(path string, size int64, seed uint64) Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[path] = fakeFile{size, seed}
	return Key{Path: path, Size: size, ModTime: time.Unix(1700000000+int64(seed), 0)}
}

func (r *fakeRemote) counts() (opened int, served int64, active int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opened, r.served, r.active
}

// ReadAt counts a stream as active from the start: a real one holds its
// connection through the round trips that open it.
func (r *fakeRemote) ReadAt(ctx context.Context, path string, off int64) (io.ReadCloser, error) {
	r.mu.Lock()
	f, ok := r.files[path]
	err := r.failOpen[path]
	delay := r.openDelay
	end := f.size
	if t, ok := r.truncate[path]; ok {
		end = t
	}
	r.active++
	r.maxActive = max(r.maxActive, r.active)
	r.mu.Unlock()
	if err == nil && !ok {
		err = fs.ErrNotExist
	}
	if err == nil {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.active--
		return nil, err
	}
	r.opened++
	r.offsets = append(r.offsets, off)
	return &fakeStream{r: r, ctx: ctx, seed: f.seed, pos: off, end: end, due: time.Now()}, nil
}

type fakeStream struct {
	r        *fakeRemote
	ctx      context.Context
	seed     uint64
	pos, end int64
	closed   bool
	due      time.Time // when the link has delivered the bytes read so far
}

// linkBuffer is how far a reader may fall behind the link before the link
// stalls: the socket buffers of a real connection.
const linkBuffer = 4 << 20

func (s *fakeStream) Read(p []byte) (int, error) {
	if s.closed {
		return 0, errors.New("read on closed stream")
	}
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	if s.pos >= s.end {
		return 0, io.EOF
	}
	s.r.mu.Lock()
	maxRead, bps := s.r.maxRead, s.r.bytesPerSec
	s.r.mu.Unlock()
	n := min(int64(len(p)), s.end-s.pos)
	if maxRead > 0 {
		n = min(n, int64(maxRead))
	}
	fill(s.seed, s.pos, p[:n])
	if bps > 0 {
		now := time.Now()
		if lag := time.Duration(linkBuffer * int64(time.Second) / bps); s.due.Before(now.Add(-lag)) {
			s.due = now.Add(-lag)
		}
		s.due = s.due.Add(time.Duration(n * int64(time.Second) / bps))
		time.Sleep(time.Until(s.due))
	}
	s.pos += n
	s.r.mu.Lock()
	s.r.served += n
	s.r.mu.Unlock()
	return int(n), nil
}

func (s *fakeStream) Close() error {
	if s.closed {
		return errors.New("closed twice")
	}
	s.closed = true
	s.r.mu.Lock()
	s.r.active--
	s.r.mu.Unlock()
	return nil
}

// The content of a file is a per-seed table of a prime length repeated:
// fast to produce, and a chunk misplaced by any multiple of a power-of-two
// chunk size reads as wrong bytes.
const tableLen = 1048573

var tables = struct {
	sync.Mutex // guards m
	m          map[uint64][]byte
}{m: map[uint64][]byte{}}

func table(seed uint64) []byte {
	tables.Lock()
	defer tables.Unlock()
	if t, ok := tables.m[seed]; ok {
		return t
	}
	t := make([]byte, tableLen)
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := range t {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		t[i] = byte(x >> 24)
	}
	tables.m[seed] = t
	return t
}

// fill writes the generated content of a file with this seed at off into p.
func fill(seed uint64, off int64, p []byte) {
	t := table(seed)
	for len(p) > 0 {
		n := copy(p, t[off%tableLen:])
		p, off = p[n:], off+int64(n)
	}
}

// expect fails the test unless p holds the generated content at off.
func expect(t testing.TB, seed uint64, off int64, p []byte) {
	t.Helper()
	want := make([]byte, len(p))
	fill(seed, off, want)
	if !bytes.Equal(p, want) {
		i := 0
		for p[i] == want[i] {
			i++
		}
		t.Fatalf("byte at %d: got %#x, want %#x", off+int64(i), p[i], want[i])
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// openCache opens a cache in dir with small test defaults, closed at cleanup.
func openCache(t testing.TB, dir string, r Remote, mod func(*Config)) *Cache {
	t.Helper()
	cfg := Config{Dir: dir, ChunkSize: 64 << 10, Streams: 4, Logger: testLogger(t)}
	if mod != nil {
		mod(&cfg)
	}
	c, err := Open(cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readSeq reads k from start to end in reads of n bytes, checking every byte.
func readSeq(t testing.TB, c *Cache, k Key, seed uint64, n int) {
	t.Helper()
	p := make([]byte, n)
	for off := int64(0); off < k.Size; off += int64(n) {
		got, err := c.ReadAt(context.Background(), k, p, off)
		if err != nil && !(err == io.EOF && off+int64(got) == k.Size) {
			t.Fatalf("read at %d: %d, %v", off, got, err)
		}
		expect(t, seed, off, p[:got])
	}
	settle(t, c)
}

// settle waits until every chunk a stream has read is committed: a read is
// answered from the chunk in flight, before the chunk reaches the disk.
func settle(t testing.TB, c *Cache) {
	t.Helper()
	for try := 0; ; try++ {
		busy := false
		c.mu.Lock()
		files := c.files.Values()
		c.mu.Unlock()
		for _, f := range files {
			f.mu.Lock()
			for _, s := range f.streams {
				busy = busy || (s.buf != nil && s.filled == int64(len(s.buf)))
			}
			f.mu.Unlock()
		}
		if !busy {
			return
		}
		if try == 500 {
			t.Fatal("chunks read but still not committed after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// diskBytes sums the disk space the regular files under dir take: less
// than their sizes where they are sparse.
func diskBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if err == nil {
				n += info.Sys().(*syscall.Stat_t).Blocks * 512
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return n
}

// eventually polls cond for up to two seconds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}

// dataFiles returns the cache's data files under dir, one per file version.
func dataFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".data") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// inventoryBytes returns the chunk bytes the cache's indexes in dir list.
func inventoryBytes(t testing.TB, dir string) int64 {
	t.Helper()
	files, err := Inventory(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, f := range files {
		n += f.Cached
	}
	return n
}
