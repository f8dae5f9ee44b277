// Package cache keeps the bytes of remote files in a persistent,
// size-bounded cache on local disk, and fetches only what is read.
//
// Words used throughout, one name per thing:
//   - A file is one version of a remote file, named by its Key (path, size,
//     modification time). A new size or time is another file.
//   - A chunk is a fixed-size piece of a file (Config.ChunkSize; the last
//     one shorter), the unit the cache stores, checks and evicts.
//   - A transfer is one ranged read from the Remote: the bytes of a file
//     from an offset on, for as long as it is read (one RETR on FTPS).
//   - A stream is the engine's reader of one transfer: it reads a run of
//     chunks one after another, storing each as it completes.
//   - A segment is a part of a file's read-ahead window given to a stream
//     of its own, so several streams read one file at once.
//
// The package has two parts along one seam. A Store keeps chunks and
// records on disk; the engine, Cache, serves
// reads from it and fetches what it lacks. Read-ahead is per file. Each
// read is classified (readahead.go): one that continues a run of reads
// earns a window that starts at one chunk and doubles as the run crosses
// chunks, up to Config.ReadAhead. A stream then reads the window chunk
// after chunk, and is extended as the reader moves on, so a cold sequential
// read pays for one transfer (a few, over segments). A stream closes once
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
	"sync"
	"sync/atomic"
	"time"

	"mastfs/cache/chunkstore"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Remote is what the cache needs from a server: a stream of a file's bytes from an offset.
// Closing the stream early is normal (the caller needed only part of the file).
type Remote interface {
	ReadAt(ctx context.Context, path string, off int64) (io.ReadCloser, error)
}

// Key names one version of a remote file, as the directory listing gave it.
type Key = chunkstore.Key

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
	// long, window-limited path, and costs little on a short one.
	// Default 4, at most Streams.
	StreamsPerFile int
	// Budget, when set, returns how many streams may be open now (the
	// connections the server currently accepts, such as the FTPS client's
	// live limit); streams at once follow it, never more than Streams.
	Budget func() int
	Logger *slog.Logger // default slog.Default()
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
	ErrCorrupt = chunkstore.ErrCorrupt
)

// Stats is a snapshot of the cache's counters.
type Stats struct {
	Used            int64 // bytes of chunks stored
	Limit           int64 // bound on Used
	Hits            int64 // chunk reads served from the store
	Misses          int64 // chunk reads that waited for the remote
	BytesFetched    int64 // bytes read from the remote
	FetchesInFlight int   // remote streams open now
	Chunks          int   // chunks on disk
	StreamsOpened   int64 // remote streams opened since Open
	WriteErrors     int64 // chunks served uncached because the disk refused them
}

// Cache is the fetch engine in front of a Remote, over a Store. It is safe
// for concurrent use. Lock order: file.mu, then Cache.mu; the Store locks
// on its own.
type Cache struct {
	cfg    Config
	remote Remote
	log    *slog.Logger
	store  Store
	slots  *slots
	spill  *lru.Cache[spillKey, []byte] // chunks the disk refused, for readers still waiting on them
	bufs   sync.Pool                    // *[]byte of ChunkSize, for chunks on their way to the store

	ctx    context.Context // ends at Close, or when Drain's bound passes; transfers run under it
	cancel context.CancelFunc
	// starting ends when Drain begins: streams wait for a slot and open
	// transfers under it, so none starts once draining.
	starting     context.Context
	stopStarting context.CancelFunc
	wg           sync.WaitGroup // stream goroutines

	mu       sync.Mutex // guards files, closed
	files    *simplelru.LRU[string, *file]
	closed   bool
	draining atomic.Bool // set by Drain: no chunk is started, none is asked for

	pre prefetcher // fetching ahead of readers (prefetch.go, walk.go)

	hits, misses, fetched, opened, writeErrors atomic.Int64
	committed                                  atomic.Int64 // chunks stored while draining
}

// filesKept bounds the files whose access patterns are remembered.
const filesKept = 4096

// Open opens the cache in cfg.Dir, creating it if needed, and rebuilds the
// index from what an earlier run left there.
func Open(cfg Config, remote Remote) (*Cache, error) {
	if cfg.Dir == "" {
		return nil, errors.New("cache: no directory given")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	st, err := openStore(cfg)
	if err != nil {
		return nil, err
	}
	return newCache(cfg, st, remote), nil
}

// setDefaults fills the zero fields of cfg and checks the rest.
func (cfg *Config) setDefaults() error {
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
		return fmt.Errorf("cache: chunk size %d outside 4 KiB..256 MiB", cfg.ChunkSize)
	}
	return nil
}

// newCache starts the engine over an open store; cfg has its defaults.
func newCache(cfg Config, st Store, remote Remote) *Cache {
	cfg.ChunkSize = st.ChunkSize()
	u := st.Usage()
	if ra := max(cfg.ChunkSize, u.Limit/4); cfg.ReadAhead > ra {
		cfg.Logger.Info("cache: read-ahead lowered to a quarter of the cache", "asked", cfg.ReadAhead, "now", ra)
		cfg.ReadAhead = ra
	}
	cfg.ReadAhead = max(cfg.ReadAhead, cfg.ChunkSize)
	spill, _ := lru.New[spillKey, []byte](max(4, 2*cfg.Streams))
	files, _ := simplelru.NewLRU[string, *file](filesKept, nil)
	c := &Cache{cfg: cfg, remote: remote, log: cfg.Logger, store: st, spill: spill, files: files,
		slots: newSlots(cfg.Streams, cfg.Budget)}
	c.bufs.New = func() any { b := make([]byte, cfg.ChunkSize); return &b }
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.starting, c.stopStarting = context.WithCancel(c.ctx)
	c.log.Info("cache: opened", "dir", cfg.Dir, "chunks", u.Chunks, "used", u.Used, "limit", u.Limit,
		"chunk_size", cfg.ChunkSize, "read_ahead", cfg.ReadAhead, "streams", cfg.Streams, "streams_per_file", cfg.StreamsPerFile)
	return c
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
	f, err := c.file(k)
	if err != nil {
		return 0, fmt.Errorf("read %s at %d: %w", k.Path, off, err)
	}
	c.store.Use(k)
	cs := c.cfg.ChunkSize
	end := off + n
	a, b := off/cs, (end-1)/cs
	f.mu.Lock()
	window, linger := f.pat.observe(off, end)
	f.mu.Unlock()
	ahead := (window + cs - 1) / cs
	pl := plan{want: min(b+1+ahead, f.nchunks), reach: ahead, linger: linger}
	pl.want = c.headerCap(k, a, b, pl.want) // a FITS reader's hop reads no data ahead (walk.go)
	c.prefetch(f, a, b, pl)
	for i := a; i <= b; i++ {
		lo, hi := max(off, i*cs), min(end, (i+1)*cs)
		pc := piece{chunk: i, within: lo - i*cs, dst: p[lo-off : hi-off]}
		if err := c.readPiece(ctx, f, pc, pl); err != nil {
			return int(lo - off), fmt.Errorf("read %s at %d: %w", k.Path, off, err)
		}
	}
	c.noticeHead(k, p[:n], off)
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// piece is the part of one chunk that a read wants.
type piece struct {
	chunk  int64  // the chunk's index
	within int64  // where dst starts in the chunk
	dst    []byte // where the bytes go
}

// plan is what a read asks of the streams besides its own chunks.
type plan struct {
	want   int64     // fetch up to this chunk (exclusive): the read's own and its read-ahead
	reach  int64     // a live stream at most this many chunks short of a chunk may serve it
	linger bool      // the stream stays open a moment for a follow-up read
	held   *heldSlot // a new stream runs in a slot its creator took (prefetch.go)
}

// readPiece fills pc.dst from the store, or from the stream that fetches its chunk.
func (c *Cache) readPiece(ctx context.Context, f *file, pc piece, pl plan) error {
	arrived, broken := 0, 0 // fetches that delivered the chunk; streams that broke
	for arrived < 3 {
		first := arrived+broken == 0
		if c.store.ReadChunk(f.key, pc.chunk, pc.dst, pc.within) {
			if first {
				c.hits.Add(1)
			}
			return nil
		}
		if b, ok := c.spill.Get(f.spillKey(pc.chunk)); ok {
			copy(pc.dst, b[pc.within:])
			return nil
		}
		if first {
			c.misses.Add(1)
		}
		s, err := c.fetch(f, pc.chunk, pl)
		if err != nil {
			return err
		}
		if s != nil {
			var served bool
			served, err = c.waitRead(ctx, s, pc)
			if served {
				return nil
			}
			if err != nil && ctx.Err() == nil && c.starting.Err() != nil {
				return ErrClosed // closed, or drained
			}
		}
		switch {
		case err == nil:
			arrived++
		case errors.Is(err, errStreamBroken) && broken < streamRetries:
			broken++
			c.log.Info("cache: remote stream broke; reading on from a fresh one",
				"path", f.key.Path, "chunk", pc.chunk, "retry", broken, "err", err)
		default:
			return err
		}
	}
	// The chunk was evicted as soon as it arrived, three times: the cache is
	// far too small for its load. Serve this read straight from the remote.
	return c.fetchUncached(ctx, f.key, pc.chunk*c.cfg.ChunkSize+pc.within, pc.dst)
}

// file returns the fetch state of a file, replacing (and stopping the
// streams of) the state of an older version of the same path.
func (c *Cache) file(k Key) (*file, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	old, ok := c.files.Get(k.Path)
	if ok && old.key.Size == k.Size && old.key.ModTime.Equal(k.ModTime) {
		c.mu.Unlock()
		return old, nil
	}
	n := (k.Size + c.cfg.ChunkSize - 1) / c.cfg.ChunkSize
	f := &file{key: k, nchunks: n, segment: c.segmentLen(n), pat: newPattern(c.cfg.ChunkSize, c.cfg.ReadAhead)}
	c.files.Add(k.Path, f)
	c.mu.Unlock()
	if ok {
		old.stopAll()
	}
	return f, nil
}

// chunkLen returns the length of chunk i of f.
func (c *Cache) chunkLen(f *file, i int64) int64 {
	return min(c.cfg.ChunkSize, f.key.Size-i*c.cfg.ChunkSize)
}

// minSegment is the least a segment stream reads: below it, the round
// trips of opening one more stream cost more than the stream saves.
const minSegment = 16 << 20

// segmentLen returns the chunks per segment of a file of n chunks, or 0
// when one stream reads on. Opening a transfer costs several round trips
// with nothing flowing, and closing one early wastes what the server had
// sent on its way (a window), so segments are as long as they can be while
// StreamsPerFile of them still fit in the read-ahead window, and no longer
// than a file cut in StreamsPerFile parts.
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
	var stop []*file
	for _, p := range c.files.Keys() {
		if underPrefix(p, pathPrefix) {
			f, _ := c.files.Peek(p)
			stop = append(stop, f)
			c.files.Remove(p)
		}
	}
	c.mu.Unlock()
	for _, f := range stop {
		f.stopAll()
	}
	n := c.store.Forget(pathPrefix)
	c.log.Info("cache: forgot files", "prefix", pathPrefix, "files", n)
	return nil
}

// PutRecord stores data under (kind, name), replacing any earlier record
// atomically: a reader sees the old record or the new one. kind is a short
// lower-case word; name may be anything, such as a remote path. Records
// are small blobs, such as listings kept for offline use, outside the bound.
func (c *Cache) PutRecord(kind, name string, data []byte) error {
	return c.store.PutRecord(kind, name, data)
}

// GetRecord returns the record stored under (kind, name). A missing record
// gives an error matching fs.ErrNotExist; a damaged one is removed and
// gives ErrCorrupt.
func (c *Cache) GetRecord(kind, name string) ([]byte, error) {
	return c.store.GetRecord(kind, name)
}

// Backing returns the data file that holds file k in the cache, open
// read-only, when every chunk of k is cached and has passed its crc check
// since Open (those not yet checked are checked now), for the kernel to
// read from directly. Until release is called, eviction leaves the file
// whole, and it counts against the bound. release closes f. ok is false
// when k is not wholly cached, or the cache is closed.
func (c *Cache) Backing(k Key) (f *os.File, release func(), ok bool) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, nil, false
	}
	c.store.Use(k)
	return c.store.Backing(k)
}

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	u := c.store.Usage()
	return Stats{Used: u.Used, Limit: u.Limit, Chunks: u.Chunks,
		Hits: c.hits.Load(), Misses: c.misses.Load(), BytesFetched: c.fetched.Load(),
		FetchesInFlight: c.slots.inUse(), StreamsOpened: c.opened.Load(), WriteErrors: c.writeErrors.Load()}
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
	files := c.files.Values()
	c.mu.Unlock()
	c.cancel()
	for _, f := range files {
		f.stopAll()
	}
	c.wg.Wait()
	return c.store.Close()
}
