package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testChunk = 64 << 10

// (a) The head of a large file costs one chunk, not the file.
func TestHeadReadFetchesOneChunk(t *testing.T) {
	r := newFake()
	k := r.add("/stage/big.fits", 2<<30, 1)
	c := openCache(t, t.TempDir(), r, func(cfg *Config) { cfg.ChunkSize = 1 << 20 })
	p := make([]byte, 2880)
	n, err := c.ReadAt(context.Background(), k, p, 0)
	if n != 2880 || err != nil {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	expect(t, 1, 0, p)
	c.Close()
	st := c.Stats()
	opened, served, active := r.counts()
	if st.BytesFetched != 1<<20 || served != 1<<20 || opened != 1 || active != 0 {
		t.Fatalf("fetched %d, fake served %d in %d streams (%d still open); want one chunk of %d",
			st.BytesFetched, served, opened, active, 1<<20)
	}
}

// (b) A reopened cache serves what it holds without the remote.
func TestReopenServesFromDisk(t *testing.T) {
	dir := t.TempDir()
	r := newFake()
	k := r.add("/a/file", 10*testChunk+123, 2)
	c := openCache(t, dir, r, nil)
	readSeq(t, c, k, 2, 50_000)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_, before, _ := r.counts()

	c = openCache(t, dir, r, nil)
	if st := c.Stats(); st.Chunks != 11 || st.Used != k.Size {
		t.Fatalf("after reopen: %+v", st)
	}
	readSeq(t, c, k, 2, 50_000)
	readSeq(t, c, k, 2, 7_000)
	_, after, _ := r.counts()
	if st := c.Stats(); st.BytesFetched != 0 || after != before || st.Misses != 0 {
		t.Fatalf("reopened cache fetched %d bytes (fake %d), stats %+v", st.BytesFetched, after-before, st)
	}
}

// (c) A new size or mtime for a path drops its chunks.
func TestNewVersionInvalidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		next func(Key) Key
	}{
		{"mtime", func(k Key) Key { k.ModTime = k.ModTime.Add(time.Second); return k }},
		{"size", func(k Key) Key { k.Size += 1000; return k }},
		{"size-shrinks", func(k Key) Key { k.Size = 3*testChunk - 7; return k }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := newFake()
			k1 := r.add("/v", 5*testChunk, 3)
			c := openCache(t, dir, r, nil)
			readSeq(t, c, k1, 3, 40_000)

			k2 := tc.next(k1)
			r.mu.Lock()
			r.files["/v"] = fakeFile{k2.Size, 4}
			r.mu.Unlock()
			before := c.Stats().BytesFetched
			readSeq(t, c, k2, 4, 40_000)
			if got := c.Stats().BytesFetched - before; got != k2.Size {
				t.Fatalf("new version fetched %d bytes, want %d", got, k2.Size)
			}
			// The new version survives a restart; the old one is gone from disk.
			c.Close()
			c = openCache(t, dir, r, nil)
			readSeq(t, c, k2, 4, 40_000)
			if st := c.Stats(); st.BytesFetched != 0 || st.Used != inventoryBytes(t, dir) {
				t.Fatalf("after restart: %+v, indexes list %d", st, inventoryBytes(t, dir))
			}
		})
	}
}

// (d) The bound holds while a file three times its size is read, and every
// byte read is right.
func TestSizeBound(t *testing.T) {
	dir := t.TempDir()
	r := newFake()
	const max = 16 * testChunk
	k := r.add("/big", 3*16*testChunk+999, 5)
	c := openCache(t, dir, r, func(cfg *Config) { cfg.MaxBytes = max; cfg.Streams = 2 })
	p := make([]byte, 128<<10)
	for off := int64(0); off < k.Size; off += int64(len(p)) {
		n, err := c.ReadAt(context.Background(), k, p, off)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		expect(t, 5, off, p[:n])
		st := c.Stats()
		if st.Used > max || st.Limit != max {
			t.Fatalf("at %d: used %d, limit %d, bound %d", off, st.Used, st.Limit, max)
		}
		// Streams may each be writing one chunk beside the bound; the
		// indexes and the lock take a block each.
		if d := diskBytes(t, dir); d > max+2*testChunk+4*4096 {
			t.Fatalf("at %d: %d bytes on disk, bound %d", off, d, max)
		}
	}
	if st := c.Stats(); st.BytesFetched != k.Size {
		t.Fatalf("fetched %d bytes for a %d-byte file", st.BytesFetched, k.Size)
	}
	// Reading it again, backwards, refetches what was evicted and is still right.
	for off := (k.Size - 1) / testChunk * testChunk; off >= 0; off -= testChunk {
		n, err := c.ReadAt(context.Background(), k, p[:testChunk], off)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		expect(t, 5, off, p[:n])
	}
	if st := c.Stats(); st.Used > max {
		t.Fatalf("used %d > %d", st.Used, max)
	}
}

// (e) What a crash leaves behind is never served: damaged chunks, and a
// chunk whose index entry the crash cut short, are fetched again, once.
func TestCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	r := newFake()
	k := r.add("/crash", 8*testChunk, 6)
	c := openCache(t, dir, r, func(cfg *Config) { cfg.StreamsPerFile = 1 })
	readSeq(t, c, k, 6, 128<<10)
	c.Close()

	data := dataFiles(t, dir)
	if len(data) != 1 {
		t.Fatalf("data files %v", data)
	}
	f, err := os.OpenFile(data[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("flipped"), 2*testChunk+5000)
	f.WriteAt(make([]byte, 100), 3*testChunk+testChunk-100)
	f.Close()
	index := strings.TrimSuffix(data[0], ".data") + ".index"
	info, err := os.Stat(index)
	if err != nil {
		t.Fatal(err)
	}
	os.Truncate(index, info.Size()-3) // the last entry, chunk 7's, cut short

	c = openCache(t, dir, r, nil)
	p := make([]byte, 1000)
	for i := int64(7); i >= 0; i-- { // backwards: each read fetches its own chunk only
		if _, err := c.ReadAt(context.Background(), k, p, i*testChunk+testChunk-1000); err != nil {
			t.Fatal(err)
		}
		expect(t, 6, i*testChunk+testChunk-1000, p)
	}
	settle(t, c)
	readSeq(t, c, k, 6, 128<<10)
	if st := c.Stats(); st.BytesFetched != 3*testChunk || st.Chunks != 8 {
		t.Fatalf("fetched %d bytes, want 3 chunks fetched again; stats %+v", st.BytesFetched, st)
	}
}

// (f) Two readers of one chunk cause one fetch.
func TestConcurrentReadersOneFetch(t *testing.T) {
	r := newFake()
	r.openDelay = 100 * time.Millisecond
	k := r.add("/f", 20*testChunk, 7)
	c := openCache(t, t.TempDir(), r, nil)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			p := make([]byte, 4096)
			if _, err := c.ReadAt(context.Background(), k, p, 5*testChunk+100); err != nil {
				t.Error(err)
			}
			expect(t, 7, 5*testChunk+100, p)
		})
	}
	wg.Wait()
	if opened, served, _ := r.counts(); opened != 1 || served != testChunk {
		t.Fatalf("two readers of one chunk: %d streams, %d bytes", opened, served)
	}
	if st := c.Stats(); st.Misses+st.Hits != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// (g) A cold sequential read keeps one stream across chunk boundaries.
func TestSequentialOneStream(t *testing.T) {
	r := newFake()
	k := r.add("/seq", 64<<20, 8)
	c := openCache(t, t.TempDir(), r, func(cfg *Config) {
		cfg.ChunkSize = 1 << 20
		cfg.StreamsPerFile = 1
		cfg.IdleTimeout = 30 * time.Second // a loaded machine may pause between two reads
	})
	readSeq(t, c, k, 8, 128<<10)
	opened, served, _ := r.counts()
	if opened != 1 || served != k.Size {
		t.Fatalf("sequential read: %d streams, %d bytes served; want 1 and %d", opened, served, k.Size)
	}
	if st := c.Stats(); st.StreamsOpened != 1 || st.BytesFetched != k.Size {
		t.Fatalf("stats %+v", st)
	}
}

// With StreamsPerFile, a sequential read runs several streams at once over
// segments of its window, fetching each byte once.
func TestSegments(t *testing.T) {
	r := newFake()
	r.openDelay = 2 * time.Millisecond
	r.bytesPerSec = 200 << 20
	k := r.add("/seg", 64<<20+5, 22)
	c := openCache(t, t.TempDir(), r, func(cfg *Config) {
		cfg.ChunkSize = 1 << 20
		cfg.StreamsPerFile = 4
		cfg.ReadAhead = 64 << 20 // segments of 16 chunks
	})
	readSeq(t, c, k, 22, 128<<10)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.served != k.Size || r.maxActive < 3 || r.maxActive > 4 || r.opened < 4 || r.opened > 16 {
		t.Fatalf("served %d of %d bytes in %d streams, %d at once", r.served, k.Size, r.opened, r.maxActive)
	}
	t.Logf("%d streams, %d at once, from offsets %v", r.opened, r.maxActive, r.offsets)
}

// A sequential read that starts mid-file, and one that skips forward within
// its window, still stream.
func TestSequentialSkipKeepsStream(t *testing.T) {
	r := newFake()
	k := r.add("/skip", 200*testChunk, 9)
	// A loaded machine may pause longer than the idle timeout between two
	// reads; that is not what this test is about.
	// One stream per file: segments read side by side are what
	// TestSegments is about, and how many a loaded machine opens
	// ahead is not what this test is about either.
	c := openCache(t, t.TempDir(), r, func(cfg *Config) {
		cfg.IdleTimeout = 30 * time.Second
		cfg.StreamsPerFile = 1
	})
	p := make([]byte, 32<<10)
	off := int64(50*testChunk + 1000)
	for range 200 {
		n, err := c.ReadAt(context.Background(), k, p, off)
		if err != nil {
			t.Fatal(err)
		}
		expect(t, 9, off, p[:n])
		off += int64(n) + 8<<10 // skip 8 KiB each time
	}
	if opened, _, _ := r.counts(); opened > 2 {
		t.Fatalf("%d streams for one forward-skipping read", opened)
	}
}

// (h) Random reads fetch only their chunks, each with a stream closed at once.
func TestRandomReadsFetchOnlyTheirChunks(t *testing.T) {
	r := newFake()
	k := r.add("/rand", 256*testChunk, 10)
	c := openCache(t, t.TempDir(), r, func(cfg *Config) { cfg.IdleTimeout = time.Hour })
	chunks := []int64{200, 17, 99, 150, 42, 3, 230}
	p := make([]byte, 4096)
	for n, i := range chunks {
		off := i*testChunk + 777
		if _, err := c.ReadAt(context.Background(), k, p, off); err != nil {
			t.Fatal(err)
		}
		expect(t, 10, off, p)
		eventually(t, "the random read's stream closes", func() bool {
			opened, served, active := r.counts()
			return opened == n+1 && served == int64(n+1)*testChunk && active == 0
		})
	}
	// A read across a boundary needs both chunks, and only those.
	q := make([]byte, 2000)
	if _, err := c.ReadAt(context.Background(), k, q, 120*testChunk-1000); err != nil {
		t.Fatal(err)
	}
	expect(t, 10, 120*testChunk-1000, q)
	if _, served, _ := r.counts(); served != int64(len(chunks)+2)*testChunk {
		t.Fatalf("served %d bytes, want %d chunks", served, len(chunks)+2)
	}
}

// Streams never exceed Config.Streams, yet do run in parallel.
func TestStreamsBound(t *testing.T) {
	r := newFake()
	r.openDelay = 30 * time.Millisecond
	c := openCache(t, t.TempDir(), r, func(cfg *Config) { cfg.Streams = 3 })
	var wg sync.WaitGroup
	for g := range 12 {
		k := r.add("/p/"+string(rune('a'+g)), 40*testChunk, uint64(20+g))
		wg.Go(func() {
			p := make([]byte, 1000)
			for _, i := range []int64{30, 7, 19} {
				if _, err := c.ReadAt(context.Background(), k, p, i*testChunk+1); err != nil {
					t.Error(err)
					return
				}
				expect(t, uint64(20+g), i*testChunk+1, p)
			}
		})
	}
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.maxActive > 3 || r.maxActive < 2 {
		t.Fatalf("max streams at once %d, want 2..3", r.maxActive)
	}
}

// A stream waiting for a follow-up read closes after the idle timeout, and
// gives its slot up to a reader that needs one, within yieldAfter.
func TestIdleStreams(t *testing.T) {
	r := newFake()
	k := r.add("/idle", 100*testChunk, 11)
	c := openCache(t, t.TempDir(), r, func(cfg *Config) { cfg.IdleTimeout = 50 * time.Millisecond })
	p := make([]byte, 4096)
	c.ReadAt(context.Background(), k, p, 0)
	eventually(t, "the idle stream closes", func() bool { _, _, a := r.counts(); return a == 0 })

	r2 := newFake()
	k2 := r2.add("/head", 100*testChunk, 12)
	k3 := r2.add("/other", 100*testChunk, 13)
	c2 := openCache(t, t.TempDir(), r2, func(cfg *Config) { cfg.Streams = 1; cfg.IdleTimeout = time.Hour })
	c2.ReadAt(context.Background(), k2, p, 0) // lingers, holding the only slot
	start := time.Now()
	if _, err := c2.ReadAt(context.Background(), k3, p, 50*testChunk); err != nil {
		t.Fatal(err)
	}
	expect(t, 13, 50*testChunk, p)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a reader waited %v for a lingering stream's slot", d)
	}
}

// Remote errors come back wrapped; a stream cut short caches nothing wrong.
func TestRemoteErrors(t *testing.T) {
	r := newFake()
	k := r.add("/gone", 10*testChunk, 14)
	r.failOpen["/gone"] = fs.ErrNotExist
	c := openCache(t, t.TempDir(), r, nil)
	p := make([]byte, 100)
	_, err := c.ReadAt(context.Background(), k, p, 3*testChunk)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "read /gone at 196608") {
		t.Fatalf("err = %v", err)
	}

	k2 := r.add("/short", 10*testChunk, 15)
	r.truncate["/short"] = 4*testChunk + 10
	_, err = c.ReadAt(context.Background(), k2, make([]byte, 6*testChunk), 0)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v", err)
	}
	if st := c.Stats(); st.Chunks != 4 {
		t.Fatalf("%d chunks cached from a stream cut short in the fifth", st.Chunks)
	}
	delete(r.truncate, "/short")
	readSeq(t, c, k2, 15, 100_000)
}

// Short reads from the remote (few bytes per Read) are no problem.
func TestRemoteShortReads(t *testing.T) {
	r := newFake()
	r.maxRead = 1000
	k := r.add("/dribble", 5*testChunk+17, 16)
	c := openCache(t, t.TempDir(), r, nil)
	readSeq(t, c, k, 16, 30_000)
}

// ReadAt at and across the end of the file behaves like os.File.ReadAt.
func TestReadAtEOF(t *testing.T) {
	r := newFake()
	k := r.add("/eof", 3*testChunk+10, 17)
	c := openCache(t, t.TempDir(), r, nil)
	for _, tc := range []struct {
		off, len int64
		n        int
		err      error
	}{
		{0, 0, 0, nil},
		{k.Size - 10, 10, 10, nil},
		{k.Size - 10, 20, 10, io.EOF},
		{k.Size, 1, 0, io.EOF},
		{k.Size + 5, 1, 0, io.EOF},
		{3*testChunk - 5, 15, 15, nil},
	} {
		p := make([]byte, tc.len)
		n, err := c.ReadAt(context.Background(), k, p, tc.off)
		if n != tc.n || err != tc.err {
			t.Errorf("ReadAt(%d bytes at %d) = %d, %v; want %d, %v", tc.len, tc.off, n, err, tc.n, tc.err)
		}
		expect(t, 17, tc.off, p[:n])
	}
	if _, err := c.ReadAt(context.Background(), k, make([]byte, 1), -1); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("negative offset: %v", err)
	}
}

func TestForget(t *testing.T) {
	dir := t.TempDir()
	r := newFake()
	a := r.add("/stage/a/x", 3*testChunk, 18)
	b := r.add("/stage/ab", 3*testChunk, 19)
	c := openCache(t, dir, r, nil)
	readSeq(t, c, a, 18, 1<<20)
	readSeq(t, c, b, 19, 1<<20)
	if err := c.Forget("/stage/a/"); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Chunks != 3 || st.Used != inventoryBytes(t, dir) {
		t.Fatalf("after forget: %+v, indexes list %d", st, inventoryBytes(t, dir))
	}
	before := c.Stats().BytesFetched
	readSeq(t, c, b, 19, 1<<20)
	readSeq(t, c, a, 18, 1<<20)
	if got := c.Stats().BytesFetched - before; got != a.Size {
		t.Fatalf("fetched %d after forget, want %d", got, a.Size)
	}
}

func TestDirInUse(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, newFake(), nil)
	if _, err := Open(Config{Dir: dir}, newFake()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open: %v", err)
	}
	c.Close()
	openCache(t, dir, newFake(), nil)
}

// Chunk size is part of the layout: a cache written with another one is dropped.
func TestChunkSizeChange(t *testing.T) {
	dir := t.TempDir()
	r := newFake()
	k := r.add("/cs", 4*testChunk, 21)
	c := openCache(t, dir, r, nil)
	readSeq(t, c, k, 21, 1<<20)
	c.Close()
	c = openCache(t, dir, r, func(cfg *Config) { cfg.ChunkSize = 2 * testChunk })
	if st := c.Stats(); st.Chunks != 0 || inventoryBytes(t, dir) != 0 {
		t.Fatalf("old chunks kept: %+v", st)
	}
	readSeq(t, c, k, 21, 1<<20)
}

// Many readers, sequential and random, over a cache much smaller than the
// files, with a Forget now and then. Run with -race.
func TestStress(t *testing.T) {
	r := newFake()
	r.maxRead = 20_000
	var keys []Key
	for i := range 3 {
		keys = append(keys, r.add("/s/"+string(rune('a'+i)), 40*testChunk+int64(i)*1000, uint64(30+i)))
	}
	c := openCache(t, t.TempDir(), r, func(cfg *Config) {
		cfg.MaxBytes = 8 * testChunk
		cfg.Streams = 3
		cfg.IdleTimeout = 20 * time.Millisecond
	})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			k := keys[g%3]
			seed := uint64(30 + g%3)
			if g%2 == 0 {
				readSeq(t, c, k, seed, 50_000+g*1000)
				return
			}
			p := make([]byte, 30_000)
			x := uint64(g)
			for range 60 {
				x = x*6364136223846793005 + 1442695040888963407
				off := int64(x>>20) % k.Size
				n, err := c.ReadAt(context.Background(), k, p, off)
				if err != nil && err != io.EOF {
					t.Error(err)
					return
				}
				expect(t, seed, off, p[:n])
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			time.Sleep(10 * time.Millisecond)
			c.Forget("/s/b")
		}
	})
	wg.Wait()
	if st := c.Stats(); st.Used > c.Stats().Limit {
		t.Fatalf("used %d over limit", st.Used)
	}
}

func TestPattern(t *testing.T) {
	const cs = 100
	type step struct {
		off, end int64
		window   int64
		linger   bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"sequential doubles per chunk", []step{
			{0, 50, 0, true}, {50, 100, 100, true}, {100, 150, 200, true}, {150, 200, 200, true},
			{200, 250, 400, true}, {250, 300, 400, true}, {300, 350, 800, true}, {350, 400, 800, true},
			{400, 450, 800, true}, // capped at max
		}},
		{"random stays random", []step{
			{5000, 5050, 0, false}, {1000, 1050, 0, false}, {9000, 9050, 0, false},
		}},
		{"re-read earns nothing", []step{
			{700, 750, 0, false}, {700, 750, 0, false},
		}},
		{"forward skip within window", []step{
			{0, 50, 0, true}, {50, 100, 100, true}, {150, 200, 200, true}, {390, 400, 400, true},
			{1500, 1550, 0, false},
		}},
		{"two interleaved runs", []step{
			{0, 50, 0, true}, {5000, 5050, 0, false}, {50, 100, 100, true}, {5050, 5100, 100, true},
			{100, 150, 200, true}, {5100, 5150, 200, true},
		}},
		{"slightly out of order", []step{
			{0, 50, 0, true}, {100, 150, 100, true}, {50, 100, 100, true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPattern(cs, 800)
			for i, s := range tc.steps {
				w, l := p.observe(s.off, s.end)
				if w != s.window || l != s.linger {
					t.Fatalf("step %d [%d,%d): window %d linger %v; want %d %v", i, s.off, s.end, w, l, s.window, s.linger)
				}
			}
		})
	}
}

// Reading a file much larger than the chunk buffers keeps the heap flat.
func TestMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 512 MiB")
	}
	r := newFake()
	k := r.add("/mem", 512<<20, 52)
	c := openCache(t, t.TempDir(), r, func(cfg *Config) {
		cfg.ChunkSize = 1 << 20
		cfg.MaxBytes = 64 << 20
		cfg.Logger = slog.New(slog.DiscardHandler)
	})
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	})
	p := make([]byte, 128<<10)
	for off := int64(0); off < k.Size; off += int64(len(p)) {
		if _, err := c.ReadAt(context.Background(), k, p, off); err != nil {
			t.Fatal(err)
		}
		if off%(64<<20) == 0 {
			expect(t, 52, off, p)
		}
	}
	close(stop)
	wg.Wait()
	// Chunk buffers (a few per stream, 1 MiB each), the fake's content table,
	// and garbage not yet collected: far below the file's 512 MiB.
	if grew := int64(peak.Load()) - int64(base); grew > 48<<20 {
		t.Fatalf("heap grew by %d MiB while reading a 512 MiB file", grew>>20)
	}
	t.Logf("heap grew by at most %d KiB", (int64(peak.Load())-int64(base))>>10)
}

// Segments are as long as the window allows, shorter for a small file, never
// below minSegment; one stream per file reads on.
func TestSegmentLen(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		perFile         int
		readAhead, size int64
		want            int64 // chunks of 1 MiB
	}{
		{4, 512 * mib, 1 << 30, 128},   // a large file: a quarter of the window
		{4, 512 * mib, 50_000_000, 16}, // 48 chunks cut in 4 is under minSegment
		{4, 512 * mib, 200 * mib, 50},  // a quarter of the file
		{4, 64 * mib, 1 << 30, 16},     // a smaller window
		{4, 512 * mib, 3 * mib, 16},    // a small file: one segment
		{1, 512 * mib, 1 << 30, 0},     // one stream reads on
		{2, 512 * mib, 10 << 30, 256},  // two streams, half the window each
	} {
		c := &Cache{cfg: Config{ChunkSize: mib, ReadAhead: tc.readAhead, StreamsPerFile: tc.perFile}}
		if got := c.segmentLen((tc.size + mib - 1) / mib); got != tc.want {
			t.Errorf("%d streams, window %d MiB, file %d: segment of %d chunks, want %d",
				tc.perFile, tc.readAhead/mib, tc.size, got, tc.want)
		}
	}
}

// gatedRemote serves the first open bytes of every stream, then holds the
// rest until gate is closed: a chunk whose start has arrived and whose end
// has not.
type gatedRemote struct {
	*fakeRemote
	open int64
	gate chan struct{}
}

func (g gatedRemote) ReadAt(ctx context.Context, path string, off int64) (io.ReadCloser, error) {
	rc, err := g.fakeRemote.ReadAt(ctx, path, off)
	if err != nil {
		return nil, err
	}
	return &gatedStream{ReadCloser: rc, left: g.open, gate: g.gate, ctx: ctx}, nil
}

type gatedStream struct {
	io.ReadCloser
	left int64
	gate chan struct{}
	ctx  context.Context
}

func (s *gatedStream) Read(p []byte) (int, error) {
	if s.left <= 0 {
		select {
		case <-s.gate:
		case <-s.ctx.Done():
			return 0, s.ctx.Err()
		}
		return s.ReadCloser.Read(p)
	}
	n, err := s.ReadCloser.Read(p[:min(int64(len(p)), s.left)])
	s.left -= int64(n)
	return n, err
}

// A read is answered once its own bytes are in, before the rest of its
// chunk; the read that takes the chunk's last byte waits for the chunk.
func TestReadAnsweredBeforeChunkEnds(t *testing.T) {
	r := newFake()
	k := r.add("/early", 3*testChunk, 23)
	g := gatedRemote{fakeRemote: r, open: 16 << 10, gate: make(chan struct{})}
	c := openCache(t, t.TempDir(), g, func(cfg *Config) { cfg.StreamsPerFile = 1 })
	read := func(off int64, n int) <-chan error {
		done := make(chan error, 1)
		go func() {
			p := make([]byte, n)
			_, err := c.ReadAt(context.Background(), k, p, off)
			if err == nil {
				expect(t, 23, off, p)
			}
			done <- err
		}()
		return done
	}
	select {
	case err := <-read(100, 4096):
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a read of bytes already in waited for the rest of the chunk")
	}
	tail := read(testChunk-100, 100)
	select {
	case err := <-tail:
		t.Fatalf("the chunk's last bytes were read before they came: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(g.gate)
	if err := <-tail; err != nil {
		t.Fatal(err)
	}
	if first, _ := c.store.Missing(k, 0, 1); first >= 0 {
		t.Error("the chunk's last read returned before the chunk was cached")
	}
}

// More sequential readers than streams: each file is read by one stream
// that runs on through its segments, and a stream whose reader is still
// reading keeps its slot; no RETR is cut short for another to start.
func TestManyReadersFewStreams(t *testing.T) {
	r := newFake()
	r.openDelay = 2 * time.Millisecond
	r.bytesPerSec = 400 << 20
	const files, size = 8, 32 << 20
	keys := make([]Key, files)
	for n := range keys {
		keys[n] = r.add(fmt.Sprintf("/part%d", n), size, uint64(40+n))
	}
	c := openCache(t, t.TempDir(), r, func(cfg *Config) {
		cfg.ChunkSize = 1 << 20
		cfg.IdleTimeout = 30 * time.Second // a loaded machine may pause between two reads
	})
	var wg sync.WaitGroup
	for n, k := range keys {
		wg.Go(func() { readSeq(t, c, k, uint64(40+n), 128<<10) })
	}
	wg.Wait()
	opened, served, _ := r.counts()
	// A reader slowed down past the grace (a loaded machine) costs a
	// stream more; one per segment, as before, would be 2 per file and more.
	if opened > 2*files || served > files*size*11/10 {
		t.Errorf("%d streams, %d bytes served for %d files of %d bytes", opened, served, files, size)
	}
	t.Logf("%d streams, %d bytes served for %d files of %d bytes", opened, served, files, size)
}
