// Package cache keeps the bytes of remote files in a chunked, persistent,
// size-bounded cache on local disk. It fetches only the chunks that are
// read, streams ahead of sequential readers, and survives restarts and
// crashes: every chunk is written aside, renamed into place and checked
// against its crc before it is served.
//
// Read-ahead is per file. Each read is classified (readahead.go): one that
// continues a run of reads earns a window that starts at one chunk and
// doubles as the run crosses chunks, up to Config.ReadAhead. A remote stream
// then reads the file chunk after chunk, each chunk committed as it
// completes, and is extended as the reader moves on, so a cold sequential
// read pays for one stream (a few, over segments, far away). It closes once
// its plan is met and no read extends it within IdleTimeout, or within
// yieldAfter when another stream waits for its slot. A random read gets a
// stream for its own chunks only, closed at once. A read waiting on a chunk
// in flight is answered as soon as its own bytes are in.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Remote is what the cache needs from a server: a stream of a file's bytes from an offset.
// Closing the stream early is normal (the caller needed only part of the file).
type Remote interface {
	ReadAt(ctx context.Context, path string, off int64) (io.ReadCloser, error)
}

// Key names one version of a remote file, as the directory listing gave it.
type Key struct {
	Path    string
	Size    int64
	ModTime time.Time
}

// Config sets up a Cache. Zero fields take their defaults.
type Config struct {
	Dir         string        // cache root; created 0700, files 0600
	MaxBytes    int64         // bound on cached data; default 10 GiB, lowered to fit free disk
	ChunkSize   int64         // default 1 MiB (see BenchmarkReadRandom/BenchmarkReadSequential)
	ReadAhead   int64         // largest read-ahead window; default 512 MiB, at most MaxBytes/4
	Streams     int           // remote streams open at once; default 4
	IdleTimeout time.Duration // how long a stream waits for the next sequential read; default 1.5 s
	// StreamsPerFile > 1 cuts a sequential read's window into that many
	// segments, each read by its own stream, which beats one stream over a
	// long, window-limited path (measured at 100 ms round trip with a 4 MiB
	// window: 1.7x one stream on 256 MiB), and costs nothing on a short
	// one. Default 4, at most Streams.
	StreamsPerFile int
	Logger         *slog.Logger // default slog.Default()
}

// Defaults for Config.
const (
	DefaultMaxBytes       = 10 << 30
	DefaultChunkSize      = 1 << 20
	DefaultReadAhead      = 512 << 20
	DefaultStreams        = 4
	DefaultStreamsPerFile = 4
	DefaultIdleTimeout    = 1500 * time.Millisecond
)

var (
	// ErrClosed is returned by calls on a closed Cache.
	ErrClosed = errors.New("cache closed")
	// ErrCorrupt means a stored record failed its checks; it has been removed.
	ErrCorrupt = errors.New("cache record corrupt")
)

// Stats is a snapshot of the cache's counters.
type Stats struct {
	Used            int64 // bytes of chunk files on disk
	Limit           int64 // bound on Used
	Hits            int64 // chunk reads served from disk
	Misses          int64 // chunk reads that waited for the remote
	BytesFetched    int64 // bytes read from the remote
	FetchesInFlight int   // remote streams open now
	Chunks          int   // chunks on disk
	StreamsOpened   int64 // remote streams opened since Open
	WriteErrors     int64 // chunks served uncached because the disk refused them
}

// Cache is a chunked on-disk cache in front of a Remote. It is safe for
// concurrent use. Lock order: fileState.mu, then Cache.mu or store.mu.
type Cache struct {
	cfg     Config
	remote  Remote
	log     *slog.Logger
	store   *store
	slots   *slots
	spill   *lru.Cache[string, []byte] // chunks the disk refused, for readers still waiting on them
	bufs    sync.Pool                  // *[]byte of headerLen+ChunkSize, for chunks on their way to disk
	scratch sync.Pool                  // *[]byte for checking a chunk's crc
	dirLock *os.File                   // holds the flock on Dir/v1; nil on a read-only tree
	records string                     // Dir/v1/records

	ctx    context.Context // ends at Close; streams run under it
	cancel context.CancelFunc
	wg     sync.WaitGroup // stream goroutines

	mu     sync.Mutex // guards states, closed
	states *simplelru.LRU[string, *fileState]
	closed bool

	hits, misses, fetched, opened, writeErrors atomic.Int64
}

// fileStatesKept bounds the access patterns remembered, one per file.
const fileStatesKept = 4096

// Open opens the cache in cfg.Dir, creating it if needed, and rebuilds the
// index from what an earlier run left there.
func Open(cfg Config, remote Remote) (*Cache, error) {
	if cfg.Dir == "" {
		return nil, errors.New("cache: no directory given")
	}
	setDefault(&cfg.MaxBytes, DefaultMaxBytes)
	setDefault(&cfg.ChunkSize, DefaultChunkSize)
	setDefault(&cfg.ReadAhead, DefaultReadAhead)
	setDefault(&cfg.Streams, DefaultStreams)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDefault(&cfg.StreamsPerFile, DefaultStreamsPerFile)
	cfg.StreamsPerFile = min(cfg.StreamsPerFile, cfg.Streams)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ChunkSize < 4<<10 || cfg.ChunkSize > 256<<20 {
		return nil, fmt.Errorf("cache: chunk size %d outside 4 KiB..256 MiB", cfg.ChunkSize)
	}
	root := filepath.Join(cfg.Dir, versionDir)
	chunks, records := filepath.Join(root, "chunks"), filepath.Join(root, "records")
	for _, d := range []string{cfg.Dir, root, chunks, records} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	dirLock, err := lockDir(root, cfg.Logger)
	if err != nil {
		return nil, err
	}
	st := newStore(chunks, cfg.ChunkSize, cfg.Logger)
	if err := st.scan(); err != nil {
		if dirLock != nil {
			dirLock.Close()
		}
		return nil, fmt.Errorf("cache: scan %s: %w", chunks, err)
	}
	removeTemps(records)
	used, _, n := st.stats()
	limit := limitToDisk(cfg.MaxBytes, used, root, cfg.Logger)
	st.setLimit(limit)
	if ra := max(cfg.ChunkSize, limit/4); cfg.ReadAhead > ra {
		cfg.Logger.Info("cache: read-ahead lowered to a quarter of the cache", "asked", cfg.ReadAhead, "now", ra)
		cfg.ReadAhead = ra
	}
	cfg.ReadAhead = max(cfg.ReadAhead, cfg.ChunkSize)
	spill, _ := lru.New[string, []byte](max(4, 2*cfg.Streams))
	states, _ := simplelru.NewLRU[string, *fileState](fileStatesKept, nil)
	c := &Cache{cfg: cfg, remote: remote, log: cfg.Logger, store: st, spill: spill, states: states,
		dirLock: dirLock, records: records,
		slots: &slots{sem: make(chan struct{}, cfg.Streams)}}
	c.bufs.New = func() any { b := make([]byte, headerLen+cfg.ChunkSize); return &b }
	c.scratch.New = func() any { b := make([]byte, 64<<10); return &b }
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.log.Info("cache: opened", "dir", cfg.Dir, "chunks", n, "used", used, "limit", limit,
		"chunk_size", cfg.ChunkSize, "read_ahead", cfg.ReadAhead, "streams", cfg.Streams, "streams_per_file", cfg.StreamsPerFile)
	return c, nil
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// ReadAt fills p with the bytes of file k from off, like os.File.ReadAt: it
// returns fewer bytes only at the end of the file, with io.EOF. Remote
// errors come back wrapped, so errors.Is still finds fs.ErrNotExist etc.
func (c *Cache) ReadAt(ctx context.Context, k Key, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s at %d: negative offset: %w", k.Path, off, fs.ErrInvalid)
	}
	if off >= k.Size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), k.Size-off)
	if n == 0 {
		return 0, nil
	}
	id := newFileID(k)
	f, err := c.state(id)
	if err != nil {
		return 0, fmt.Errorf("read %s at %d: %w", k.Path, off, err)
	}
	c.store.use(id)
	cs := c.cfg.ChunkSize
	end := off + n
	a, b := off/cs, (end-1)/cs
	f.mu.Lock()
	window, linger := f.pat.observe(off, end)
	f.mu.Unlock()
	ahead := (window + cs - 1) / cs
	want := min(b+1+ahead, f.nchunks)
	c.prefetch(f, a, b, want, ahead)
	for i := a; i <= b; i++ {
		lo, hi := max(off, i*cs), min(end, (i+1)*cs)
		if err := c.readChunk(ctx, f, i, p[lo-off:hi-off], lo-i*cs, want, ahead, linger); err != nil {
			return int(lo - off), fmt.Errorf("read %s at %d: %w", k.Path, off, err)
		}
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// readChunk copies bytes of chunk i, from within bytes into it, into dst.
func (c *Cache) readChunk(ctx context.Context, f *fileState, i int64, dst []byte, within, want, reach int64, linger bool) error {
	sp := c.scratch.Get().(*[]byte)
	defer c.scratch.Put(sp)
	arrived, broken := 0, 0 // fetches that delivered the chunk; streams that broke
	for arrived < 3 {
		first := arrived+broken == 0
		if c.store.read(f.id, i, dst, within, *sp) {
			if first {
				c.hits.Add(1)
			}
			return nil
		}
		if b, ok := c.spill.Get(spillKey(f.id, i)); ok {
			copy(dst, b[within:])
			return nil
		}
		if first {
			c.misses.Add(1)
		}
		s, err := c.fetch(f, i, want, reach, linger)
		if err != nil {
			return err
		}
		if s != nil {
			var served bool
			served, err = c.waitRead(ctx, s, i, within, dst)
			if served {
				return nil
			}
			if err != nil && ctx.Err() == nil && c.ctx.Err() != nil {
				return ErrClosed
			}
		}
		switch {
		case err == nil:
			arrived++
		case errors.Is(err, errStreamBroken) && broken < streamRetries:
			broken++
			c.log.Info("cache: remote stream broke; reading on from a fresh one",
				"path", f.id.Path, "chunk", i, "retry", broken, "err", err)
		default:
			return err
		}
	}
	// The chunk was evicted as soon as it arrived, three times: the cache is
	// far too small for its load. Serve this read straight from the remote.
	return c.fetchUncached(ctx, f.id, i*c.cfg.ChunkSize+within, dst)
}

// state returns the fetch state of a file version, replacing (and stopping
// the streams of) the state of an older version of the same path.
func (c *Cache) state(id fileID) (*fileState, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	old, ok := c.states.Get(id.Path)
	if ok && old.id.verHash == id.verHash {
		c.mu.Unlock()
		return old, nil
	}
	n := c.store.chunks(id.Size)
	f := &fileState{id: id, nchunks: n, segment: c.segmentLen(n), pat: newPattern(c.cfg.ChunkSize, c.cfg.ReadAhead)}
	c.states.Add(id.Path, f)
	c.mu.Unlock()
	if ok {
		old.stopAll()
	}
	return f, nil
}

// minSegment is the least a segment stream reads: below it, the round
// trips of opening one more stream cost more than the stream saves.
const minSegment = 16 << 20

// segmentLen returns the chunks per segment of a file of n chunks, or 0
// when one stream reads on. A segment is what one stream reads with one
// RETR: opening one costs five round trips or so with nothing flowing,
// and closing one wastes what the server had sent on its way (a window),
// so segments are as long as they can be while StreamsPerFile of them
// still fit in the read-ahead window, and no longer than a file cut in
// StreamsPerFile parts.
func (c *Cache) segmentLen(n int64) int64 {
	per := int64(c.cfg.StreamsPerFile)
	if per <= 1 {
		return 0
	}
	cs := c.cfg.ChunkSize
	return max(1, minSegment/cs, min(c.cfg.ReadAhead/cs/per, (n+per-1)/per))
}

// Forget drops everything cached at or under a remote path, e.g. a staged
// directory deleted on the server. An empty prefix or "/" drops all.
func (c *Cache) Forget(pathPrefix string) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	var stop []*fileState
	for _, p := range c.states.Keys() {
		if underPrefix(p, pathPrefix) {
			f, _ := c.states.Peek(p)
			stop = append(stop, f)
			c.states.Remove(p)
		}
	}
	c.mu.Unlock()
	for _, f := range stop {
		f.stopAll()
	}
	n := c.store.forget(pathPrefix)
	c.log.Info("cache: forgot files", "prefix", pathPrefix, "files", n)
	return nil
}

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	used, limit, chunks := c.store.stats()
	return Stats{Used: used, Limit: limit, Chunks: chunks,
		Hits: c.hits.Load(), Misses: c.misses.Load(), BytesFetched: c.fetched.Load(),
		FetchesInFlight: len(c.slots.sem), StreamsOpened: c.opened.Load(), WriteErrors: c.writeErrors.Load()}
}

// Close stops every stream, waits for them, and releases the cache
// directory. What is on disk stays for the next Open.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	states := c.states.Values()
	c.mu.Unlock()
	c.cancel()
	for _, f := range states {
		f.stopAll()
	}
	c.wg.Wait()
	if c.dirLock == nil {
		return nil
	}
	return c.dirLock.Close() // closing drops the flock
}
