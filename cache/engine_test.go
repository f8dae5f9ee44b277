package cache

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memStore is a Store in memory: the engine's contract, with nothing on disk.
type memStore struct {
	chunkSize int64
	limit     int64

	mu      sync.Mutex // guards every field below
	files   map[string]Key
	chunks  map[memChunk][]byte
	order   []memChunk // least recently used first
	used    int64
	records map[string][]byte
}

type memChunk struct {
	path  string
	index int64
}

func newMemStore(chunkSize, limit int64) *memStore {
	return &memStore{chunkSize: chunkSize, limit: limit, files: map[string]Key{},
		chunks: map[memChunk][]byte{}, records: map[string][]byte{}}
}

func (m *memStore) ChunkSize() int64 { return m.chunkSize }

func (m *memStore) Use(k Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.files[k.Path]; ok && (old.Size != k.Size || !old.ModTime.Equal(k.ModTime)) {
		m.dropLocked(func(c memChunk) bool { return c.path == k.Path })
	}
	m.files[k.Path] = k
}

func (m *memStore) current(k Key) bool {
	old, ok := m.files[k.Path]
	return ok && old.Size == k.Size && old.ModTime.Equal(k.ModTime)
}

func (m *memStore) Missing(k Key, from, to int64) (int64, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	first, last := int64(-1), int64(-1)
	for i := from; i < to; i++ {
		if _, ok := m.chunks[memChunk{k.Path, i}]; ok && m.current(k) {
			continue
		}
		if first < 0 {
			first = i
		}
		last = i
	}
	return first, last
}

func (m *memStore) ReadChunk(k Key, i int64, dst []byte, within int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.chunks[memChunk{k.Path, i}]
	if !ok || !m.current(k) {
		return false
	}
	copy(dst, b[within:])
	m.touchLocked(memChunk{k.Path, i})
	return true
}

func (m *memStore) touchLocked(c memChunk) {
	for n, x := range m.order {
		if x == c {
			m.order = append(m.order[:n], m.order[n+1:]...)
			break
		}
	}
	m.order = append(m.order, c)
}

func (m *memStore) PutChunk(k Key, i int64, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.current(k) {
		return ErrStale
	}
	c := memChunk{k.Path, i}
	if old, ok := m.chunks[c]; ok {
		m.used -= int64(len(old))
	}
	m.chunks[c] = append([]byte(nil), data...)
	m.used += int64(len(data))
	m.touchLocked(c)
	for m.used > m.limit && len(m.order) > 1 {
		m.dropLocked(func(x memChunk) bool { return x == m.order[0] })
	}
	return nil
}

func (m *memStore) dropLocked(match func(memChunk) bool) int {
	n := 0
	kept := m.order[:0]
	for _, c := range m.order {
		if match(c) {
			m.used -= int64(len(m.chunks[c]))
			delete(m.chunks, c)
			n++
			continue
		}
		kept = append(kept, c)
	}
	m.order = kept
	return n
}

func (m *memStore) Evict(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for target := m.used - n; m.used > target && len(m.order) > 0; {
		m.dropLocked(func(x memChunk) bool { return x == m.order[0] })
	}
}

func (m *memStore) Forget(prefix string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for p := range m.files {
		if underPrefix(p, prefix) {
			m.dropLocked(func(c memChunk) bool { return c.path == p })
			delete(m.files, p)
			n++
		}
	}
	return n
}

func (m *memStore) Usage() Usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Usage{Used: m.used, Limit: m.limit, Chunks: len(m.chunks)}
}

func (m *memStore) PutRecord(kind, name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records[kind+"\x00"+name] = append([]byte(nil), data...)
	return nil
}

func (m *memStore) GetRecord(kind, name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.records[kind+"\x00"+name]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return b, nil
}

// Backing has no file to hand out: the chunks are in memory.
func (m *memStore) Backing(Key) (*os.File, func(), bool) { return nil, nil, false }

func (m *memStore) Close() error { return nil }

var _ Store = (*memStore)(nil)

// engineOver opens the engine over the store st, with the test defaults.
func engineOver(t *testing.T, st Store, r Remote, mod func(*Config)) *Cache {
	t.Helper()
	cfg := Config{Dir: "unused", ChunkSize: st.ChunkSize(), Streams: 4, Logger: testLogger(t)}
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	c := newCache(cfg, st, r)
	t.Cleanup(func() { c.Close() })
	return c
}

// The engine keeps its promises over any Store: the one on disk and one in
// memory. A head read costs one chunk, a sequential read one stream, a
// second read nothing, a new version everything again, and the bound holds.
func TestEngineOverStores(t *testing.T) {
	const bound = 12 * testChunk
	stores := map[string]func(t *testing.T) Store{
		"disk": func(t *testing.T) Store {
			cfg := Config{Dir: t.TempDir(), ChunkSize: testChunk, MaxBytes: bound, Logger: testLogger(t)}
			if err := cfg.setDefaults(); err != nil {
				t.Fatal(err)
			}
			st, err := openStore(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		"memory": func(t *testing.T) Store { return newMemStore(testChunk, bound) },
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			r := newFake()
			k := r.add("/e/f", 10*testChunk+99, 60)
			big := r.add("/e/big", 40*testChunk, 61)
			c := engineOver(t, open(t), r, func(cfg *Config) {
				cfg.StreamsPerFile = 1
				cfg.IdleTimeout = 30 * time.Second // a loaded machine may pause between reads
			})
			p := make([]byte, 2880)
			if _, err := c.ReadAt(context.Background(), k, p, 0); err != nil {
				t.Fatal(err)
			}
			expect(t, 60, 0, p)
			settle(t, c)
			if st := c.Stats(); st.BytesFetched != testChunk {
				t.Fatalf("head read fetched %d bytes, want one chunk", st.BytesFetched)
			}
			readSeq(t, c, k, 60, 40_000)
			if first, _ := c.store.Missing(k, 0, 11); first >= 0 {
				t.Fatalf("chunk %d not stored after a whole read", first)
			}
			fetched := c.Stats().BytesFetched
			if fetched < k.Size {
				t.Fatalf("a whole read fetched %d bytes of %d", fetched, k.Size)
			}
			readSeq(t, c, k, 60, 7_000)
			if st := c.Stats(); st.BytesFetched != fetched {
				t.Fatalf("second read fetched: %+v", st)
			}
			k2 := k
			k2.ModTime = k.ModTime.Add(time.Second)
			readSeq(t, c, k2, 60, 40_000)
			if st := c.Stats(); st.BytesFetched < fetched+k.Size {
				t.Fatalf("new version fetched %d bytes, want its %d", st.BytesFetched-fetched, k.Size)
			}
			readSeq(t, c, big, 61, 128<<10)
			if st := c.Stats(); st.Used > st.Limit {
				t.Fatalf("bound broken: %+v", st)
			}
			if err := c.PutRecord("listing", "/e", []byte("x")); err != nil {
				t.Fatal(err)
			}
			if b, err := c.GetRecord("listing", "/e"); err != nil || string(b) != "x" {
				t.Fatalf("record: %q, %v", b, err)
			}
		})
	}
}

// With a Budget, streams at once follow it as it changes.
func TestBudget(t *testing.T) {
	r := newFake()
	r.openDelay = 20 * time.Millisecond
	var budget atomic.Int64
	budget.Store(1)
	c := openCache(t, t.TempDir(), r, func(cfg *Config) {
		cfg.Streams = 4
		cfg.Budget = func() int { return int(budget.Load()) }
	})
	read := func(n int) {
		var wg sync.WaitGroup
		for g := range n {
			k := r.add(fmt.Sprintf("/b/%d-%d", n, g), 8*testChunk, uint64(70+g))
			wg.Go(func() {
				p := make([]byte, 100)
				for _, i := range []int64{5, 1, 3} {
					if _, err := c.ReadAt(context.Background(), k, p, i*testChunk); err != nil {
						t.Error(err)
						return
					}
					expect(t, uint64(70+g), i*testChunk, p)
				}
			})
		}
		wg.Wait()
	}
	read(6)
	r.mu.Lock()
	most := r.maxActive
	r.maxActive = 0
	r.mu.Unlock()
	if most != 1 {
		t.Fatalf("budget 1: %d streams at once", most)
	}
	budget.Store(3)
	read(12)
	r.mu.Lock()
	most = r.maxActive
	r.mu.Unlock()
	if most < 2 || most > 3 {
		t.Fatalf("budget 3: %d streams at once", most)
	}
}
