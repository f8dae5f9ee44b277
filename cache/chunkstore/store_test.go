package chunkstore

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const testChunk = 64 << 10

// logBuffer collects what a store logs, for tests that count log lines.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

// openStore opens a store in dir with 64 KiB chunks and a roomy bound,
// closed at cleanup; mod may change the config first.
func openStore(t testing.TB, dir string, mod func(*Config)) *Store {
	t.Helper()
	cfg := Config{Dir: dir, ChunkSize: testChunk, MaxBytes: 1 << 30, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testKey(path string, size int64) Key {
	return Key{Path: path, Size: size, ModTime: time.Unix(1700000000, 5)}
}

// content returns chunk i of the file k, made up from its path.
func content(k Key, i int64) []byte {
	n := min(testChunk, k.Size-i*testChunk)
	b := make([]byte, n)
	x := uint32(len(k.Path))*2654435761 + uint32(i)*40503 + uint32(k.Size)
	for j := range b {
		x = x*1664525 + 1013904223
		b[j] = byte(x >> 24)
	}
	return b
}

func put(t testing.TB, s *Store, k Key, chunks ...int64) {
	t.Helper()
	s.Use(k)
	for _, i := range chunks {
		if err := s.PutChunk(k, i, content(k, i)); err != nil {
			t.Fatalf("put chunk %d of %s: %v", i, k.Path, err)
		}
	}
}

// check reads chunk i of k whole and reports whether it was served; a
// served chunk must hold the right bytes.
func check(t testing.TB, s *Store, k Key, i int64) bool {
	t.Helper()
	want := content(k, i)
	got := make([]byte, len(want))
	if !s.ReadChunk(k, i, got, 0) {
		return false
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("chunk %d of %s served with wrong bytes", i, k.Path)
	}
	return true
}

func dataFile(dir string, k Key) string {
	data, _ := versionPaths(filepath.Join(dir, versionDir, filesDir), versionName(k))
	return data
}

func indexFile(dir string, k Key) string {
	_, index := versionPaths(filepath.Join(dir, versionDir, filesDir), versionName(k))
	return index
}

// Chunks put are read back, whole or in part, across a reopen, and counted.
func TestPutReadReopen(t *testing.T) {
	dir := t.TempDir()
	k := testKey("/a/f.fits", 5*testChunk+123)
	s := openStore(t, dir, nil)
	put(t, s, k, 0, 2, 5)
	if u := s.Usage(); u.Used != 2*testChunk+123 || u.Chunks != 3 {
		t.Fatalf("usage %+v", u)
	}
	if first, last := s.Missing(k, 0, 6); first != 1 || last != 4 {
		t.Fatalf("missing %d..%d, want 1..4", first, last)
	}
	part := make([]byte, 100)
	if !s.ReadChunk(k, 2, part, 500) || !bytes.Equal(part, content(k, 2)[500:600]) {
		t.Fatal("part of a chunk")
	}
	s.Close()
	s = openStore(t, dir, nil)
	if u := s.Usage(); u.Used != 2*testChunk+123 || u.Chunks != 3 {
		t.Fatalf("usage after reopen %+v", u)
	}
	s.Use(k)
	for _, i := range []int64{0, 2, 5} {
		if !check(t, s, k, i) {
			t.Fatalf("chunk %d not served after reopen", i)
		}
	}
	if check(t, s, k, 1) {
		t.Fatal("a chunk never put was served")
	}
	if info, err := os.Stat(dataFile(dir, k)); err != nil || info.Size() != k.Size || allocated(dataFile(dir, k)) > 3*testChunk+8192 {
		t.Fatalf("data file: %v, %d bytes allocated", err, allocated(dataFile(dir, k)))
	}
}

// What a crash or a damaged disk leaves is never served: a chunk whose
// bytes differ from its crc, one written without its entry, an entry cut
// short, temporary files, files of no version.
func TestCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	k := testKey("/crash", 8*testChunk)
	s := openStore(t, dir, nil)
	put(t, s, k, 0, 1, 2, 3, 4, 5)
	s.Close()

	f, err := os.OpenFile(dataFile(dir, k), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff ^ content(k, 1)[5000]}, testChunk+5000) // flipped
	f.WriteAt(content(k, 6), 6*testChunk)                         // died between the bytes and the entry
	f.Close()
	ix, _ := os.OpenFile(indexFile(dir, k), os.O_WRONLY|os.O_APPEND, 0)
	var e [entryLen]byte
	entry{index: 7, crc: 1}.encode(e[:])
	ix.Write(e[:entryLen-3]) // died mid-append
	ix.Close()
	tmp := indexFile(dir, k) + tempMark + "123"
	os.WriteFile(tmp, []byte("half"), 0o600)
	other := testKey("/other", 100)
	os.WriteFile(dataFile(dir, other), make([]byte, 100), 0o600) // a data file with no index

	s = openStore(t, dir, nil)
	for _, p := range []string{tmp, dataFile(dir, other)} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left at open: %v", filepath.Base(p), err)
		}
	}
	s.Use(k)
	for i, want := range []bool{true, false, true, true, true, true, false, false} {
		if got := check(t, s, k, int64(i)); got != want {
			t.Errorf("chunk %d served: %v, want %v", i, got, want)
		}
	}
	if first, _ := s.Missing(k, 1, 2); first != 1 {
		t.Error("the damaged chunk is still listed")
	}
	put(t, s, k, 1, 6, 7)
	s.Close()
	s = openStore(t, dir, nil)
	s.Use(k)
	for i := range int64(8) {
		if !check(t, s, k, i) {
			t.Errorf("chunk %d not served after it was put again", i)
		}
	}
}

// A new size or mtime drops the old version, on disk too.
func TestNewVersionDrops(t *testing.T) {
	dir := t.TempDir()
	k1 := testKey("/v", 4*testChunk)
	s := openStore(t, dir, nil)
	put(t, s, k1, 0, 1, 2, 3)
	k2 := k1
	k2.ModTime = k2.ModTime.Add(time.Second)
	s.Use(k2)
	if _, err := os.Stat(dataFile(dir, k1)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("old version's data file: %v", err)
	}
	if u := s.Usage(); u.Used != 0 || u.Chunks != 0 {
		t.Fatalf("usage %+v", u)
	}
	if err := s.PutChunk(k1, 0, content(k1, 0)); !errors.Is(err, ErrStale) {
		t.Fatalf("put to the old version: %v", err)
	}
	put(t, s, k2, 1)
	s.Close()
	s = openStore(t, dir, nil)
	s.Use(k2)
	if !check(t, s, k2, 1) || check(t, s, k1, 1) {
		t.Fatal("after reopen")
	}
}

// The bound holds on disk as in the count: evicted chunks' holes are
// punched, least recently used first.
func TestBoundPunchesHoles(t *testing.T) {
	dir := t.TempDir()
	const bound = 8 * testChunk
	s := openStore(t, dir, func(c *Config) { c.MaxBytes = bound })
	a, b := testKey("/a", 16*testChunk), testKey("/b", 16*testChunk)
	put(t, s, a, 0, 1, 2, 3)
	put(t, s, b, 0, 1, 2, 3)
	s.Use(a)
	check(t, s, a, 0) // a's first chunk used last
	put(t, s, b, 4, 5)
	if u := s.Usage(); u.Used > bound {
		t.Fatalf("usage %+v", u)
	}
	if !check(t, s, a, 0) || check(t, s, a, 1) || check(t, s, a, 2) {
		t.Fatal("evicted other than the least recently used chunks")
	}
	for i := range int64(16) {
		put(t, s, b, i)
		if d := allocated(dataFile(dir, a)) + allocated(dataFile(dir, b)); d > bound+2*8192 {
			t.Fatalf("%d bytes allocated, bound %d", d, bound)
		}
	}
}

// Where holes can't be punched, whole files are evicted, said once.
func TestNoPunchEvictsFiles(t *testing.T) {
	dir := t.TempDir()
	var log logBuffer
	s := openStore(t, dir, func(c *Config) {
		c.MaxBytes = 6 * testChunk
		c.Logger = slog.New(slog.NewTextHandler(&log, nil))
	})
	s.mu.Lock()
	s.noPunch = true
	s.mu.Unlock()
	a, b := testKey("/a", 4*testChunk), testKey("/b", 8*testChunk)
	put(t, s, a, 0, 1, 2, 3)
	put(t, s, b, 0, 1, 2)
	if _, err := os.Stat(dataFile(dir, a)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a's file kept: %v", err)
	}
	put(t, s, b, 3, 4, 5, 6, 7)
	if u := s.Usage(); u.Used > 6*testChunk {
		t.Fatalf("usage %+v", u)
	}
}

// A file held as a backing file keeps every byte while held, counts
// against the bound, and gives way once released.
func TestBackingHeld(t *testing.T) {
	dir := t.TempDir()
	const bound = 8 * testChunk
	s := openStore(t, dir, func(c *Config) { c.MaxBytes = bound })
	k, other := testKey("/held", 4*testChunk+10), testKey("/other", 32*testChunk)
	put(t, s, k, 0, 1, 2)
	if _, _, ok := s.Backing(k); ok {
		t.Fatal("backing file of a file not wholly stored")
	}
	put(t, s, k, 4, 3)
	f, release, ok := s.Backing(k)
	if !ok {
		t.Fatal("no backing file for a file wholly stored")
	}
	for i := range int64(8) {
		put(t, s, other, i)
	}
	if u := s.Usage(); u.Used > bound+k.Size || u.Used < k.Size {
		t.Fatalf("usage while held %+v", u)
	}
	// The version changes on the server meanwhile: the holder still reads the old bytes.
	k2 := k
	k2.Size++
	s.Use(k2)
	got := make([]byte, k.Size)
	if n, err := f.ReadAt(got, 0); int64(n) != k.Size || err != nil {
		t.Fatalf("read the backing file: %d, %v", n, err)
	}
	for i := range int64(5) {
		if !bytes.Equal(got[i*testChunk:min(k.Size, (i+1)*testChunk)], content(k, i)) {
			t.Fatalf("chunk %d of the backing file changed while held", i)
		}
	}
	release()
	release()
	if u := s.Usage(); u.Used > bound {
		t.Fatalf("usage after release %+v", u)
	}
	if _, _, ok := s.Backing(k); ok {
		t.Fatal("backing file of a replaced version")
	}

	// A damaged chunk found by Backing is dropped, and no file handed out.
	k3 := testKey("/damaged", 2*testChunk)
	put(t, s, k3, 0, 1)
	s.Close()
	fd, _ := os.OpenFile(dataFile(dir, k3), os.O_RDWR, 0)
	fd.WriteAt([]byte("XX"), testChunk+7)
	fd.Close()
	s = openStore(t, dir, func(c *Config) { c.MaxBytes = bound })
	s.Use(k3)
	if _, _, ok := s.Backing(k3); ok {
		t.Fatal("backing file with a damaged chunk")
	}
	if first, _ := s.Missing(k3, 0, 2); first != 1 {
		t.Fatalf("damaged chunk not dropped: first missing %d", first)
	}
}

// A cache in the format before is removed at Open, with one log line, and never read.
func TestOlderFormatRemoved(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "v1", "chunks", "ab", strings.Repeat("ab", 32))
	os.MkdirAll(old, 0o700)
	os.WriteFile(filepath.Join(old, "meta"), []byte("MASTMETA garbage"), 0o600)
	os.WriteFile(filepath.Join(old, "0"), make([]byte, 5000), 0o600)
	os.WriteFile(filepath.Join(dir, "v1", "lock"), nil, 0o600)
	var log logBuffer
	s := openStore(t, dir, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&log, nil)) })
	if _, err := os.Stat(filepath.Join(dir, "v1")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("v1 cache left: %v", err)
	}
	if n := log.count("older format"); n != 1 {
		t.Fatalf("%d log lines about the older format, want 1:\n%s", n, log.buf.String())
	}
	if u := s.Usage(); u.Chunks != 0 {
		t.Fatalf("usage %+v", u)
	}

	// Clear removes one too.
	dir2 := t.TempDir()
	os.MkdirAll(filepath.Join(dir2, "v1", "chunks"), 0o700)
	if _, err := Clear(dir2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir2, "v1")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("v1 cache left by Clear: %v", err)
	}
}

// The LRU order survives a restart through data file mtimes: the files
// used least recently lose their chunks first when the bound is lowered.
func TestLRUOrderSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	a, b := testKey("/lru/a", 4*testChunk), testKey("/lru/b", 4*testChunk)
	s := openStore(t, dir, nil)
	put(t, s, a, 0, 1, 2, 3)
	put(t, s, b, 0, 1, 2, 3)
	s.Close()
	now := time.Now()
	os.Chtimes(dataFile(dir, a), now, now.Add(-time.Hour)) // a used last
	os.Chtimes(dataFile(dir, b), now, now.Add(-2*time.Hour))
	s = openStore(t, dir, func(c *Config) { c.MaxBytes = 6 * testChunk })
	s.Use(a)
	s.Use(b)
	for i, want := range []bool{false, false, true, true} {
		if got := check(t, s, b, int64(i)); got != want {
			t.Errorf("b chunk %d served: %v, want %v", i, got, want)
		}
		if !check(t, s, a, int64(i)) {
			t.Errorf("a chunk %d evicted", i)
		}
	}
	// A read refreshes a file's mtime.
	s.Close()
	os.Chtimes(dataFile(dir, a), now, now.Add(-time.Hour))
	s = openStore(t, dir, nil)
	s.Use(a)
	check(t, s, a, 1)
	if info, err := os.Stat(dataFile(dir, a)); err != nil || time.Since(info.ModTime()) > time.Minute {
		t.Fatalf("mtime not refreshed on use: %v", err)
	}
}

// Directories are 0700, files 0600, and every name is a digest.
func TestPermissionsAndNames(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, nil)
	put(t, s, testKey("/../../etc/passwd\n", 3*testChunk), 0, 2)
	s.PutRecord("listing", "/x", []byte("y"))
	filepath.WalkDir(filepath.Join(dir, versionDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		info, _ := d.Info()
		if want := fs.FileMode(0o600); d.IsDir() {
			if info.Mode().Perm() != 0o700 {
				t.Errorf("%s: %v", p, info.Mode())
			}
		} else if info.Mode().Perm() != want {
			t.Errorf("%s: %v", p, info.Mode())
		}
		base := strings.TrimSuffix(strings.TrimSuffix(d.Name(), dataExt), indexExt)
		if !d.IsDir() && base != "lock" && !isHex(base, 64) {
			t.Errorf("file name %q", d.Name())
		}
		return nil
	})
}

// The cache directory removed under an open store: chunks put later are
// stored afresh, and none of the removed ones is served.
func TestDirRemovedUnder(t *testing.T) {
	dir := t.TempDir()
	k := testKey("/gone", 4*testChunk)
	s := openStore(t, dir, nil)
	put(t, s, k, 0, 1)
	os.RemoveAll(filepath.Join(dir, versionDir))
	if check(t, s, k, 0) {
		t.Fatal("served a chunk whose file was removed")
	}
	put(t, s, k, 2, 3)
	if check(t, s, k, 1) || !check(t, s, k, 2) {
		t.Fatal("after the directory came back")
	}
	if u := s.Usage(); u.Chunks != 2 || u.Used != 2*testChunk {
		t.Fatalf("usage %+v", u)
	}
}
