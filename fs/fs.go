// Package fs presents a remote stage as a read-only FUSE file system: a
// go-fuse node tree built lazily from directory listings, with file contents
// served through the chunk cache. It speaks go-fuse, the Lister interface and
// the cache; it never speaks the server's protocol.
package fs

import (
	"context"
	"errors"
	iofs "io/fs"
	"log/slog"
	"path"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/singleflight"

	"mastfs/cache"
	"mastfs/fs/stage"
)

// Lister reads remote directories. Errors wrap io/fs.ErrNotExist for a
// missing directory and io/fs.ErrPermission for one the user may not read.
// An empty listing may also be a directory whose names the server will not
// show (one the user may traverse but not read).
type Lister interface {
	List(ctx context.Context, dir string) ([]stage.Entry, error)
}

// Contents reads file bytes, through the cache.
type Contents interface {
	ReadAt(ctx context.Context, k cache.Key, p []byte, off int64) (int, error)
	Forget(pathPrefix string) error
	PutRecord(kind, name string, data []byte) error
	GetRecord(kind, name string) ([]byte, error)
}

// Options tune the tree.
type Options struct {
	RemoteDir   string        // the remote directory shown at the mount's root
	DirTTL      time.Duration // how long a listing (and the kernel's entries) stay fresh
	NegativeTTL time.Duration // how long a failed lookup is remembered
	OpTimeout   time.Duration // bound of one listing or read, retries included
	Logger      *slog.Logger
	Statfs      func() (total, free uint64) // what df shows; nil: zeros
	UID, GID    uint32                      // owner shown on every node
	ListAhead   int                         // subdirectory listings made ahead at once; 0: 3, negative: none
	// Budget, when set, is the live number of connections the server
	// allows; listing ahead then uses Budget()-1 of them, leaving one for
	// what the user waits on, and follows the limit as it changes.
	Budget func() int
	// Clock tells the time of TTLs; nil: time.Now.
	Clock func() time.Time
	// Passthrough hands the kernel the cache file of a file wholly cached
	// at open, when Contents can give one (see Backer), so reads and mmap
	// go to local disk without crossing FUSE.
	Passthrough bool
	// ForceNoPassthrough makes every open take the FUSE read path, as if
	// the kernel had refused passthrough.
	ForceNoPassthrough bool
}

func (o Options) withDefaults() Options {
	if o.RemoteDir == "" {
		o.RemoteDir = "/"
	}
	o.RemoteDir = path.Clean("/" + o.RemoteDir)
	if o.ListAhead == 0 {
		o.ListAhead = 3
	}
	if o.DirTTL <= 0 {
		o.DirTTL = 5 * time.Minute
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = 5 * time.Second
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o
}

// tree is what every node shares.
type tree struct {
	opts     Options
	lister   Lister
	contents Contents
	log      *slog.Logger
	lists    singleflight.Group // one listing in flight per directory
	ahead    *ahead             // nil when listing ahead is off
	listed   sync.Map           // directory path to the time.Time of its last listing from the server
	seq      sequence           // files opened in listing order, fetched ahead (sequence.go)
	pt       passthrough

	// base is the parent of every request's context; Stop cancels it.
	base context.Context
	stop context.CancelFunc
}

func (t *tree) now() time.Time { return t.opts.Clock() }

// since is time.Since on the tree's clock.
func (t *tree) since(at time.Time) time.Duration { return t.now().Sub(at) }

// op ends a request at the kernel's interrupt or at Stop, whichever
// comes first; the cache bounds the wait for the server itself.
func (t *tree) op(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	unhook := context.AfterFunc(t.base, cancel)
	return ctx, func() { unhook(); cancel() }
}

// shared bounds work that many requests wait on (a listing): not tied to
// the first caller's interrupt, but ended by Stop and OpTimeout.
func (t *tree) shared() (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.base, t.opts.OpTimeout)
}

// Root is the node at the mount's root, and the handle through which the
// program steers a mounted tree.
type Root struct {
	dirNode
}

// NewRoot returns the root node of a tree showing opts.RemoteDir.
func NewRoot(l Lister, c Contents, opts Options) *Root {
	opts = opts.withDefaults()
	t := &tree{opts: opts, lister: l, contents: c, log: opts.Logger}
	t.base, t.stop = context.WithCancel(context.Background())
	t.ahead = newAhead(t, opts.ListAhead)
	t.pt.init(c, opts)
	return &Root{dirNode: dirNode{t: t, remote: opts.RemoteDir}}
}

// Stop ends the requests still in flight with EIO, and fails those that
// come after at once: a kernel that has let the mount go is not kept waiting on the
// server.
func (r *Root) Stop() {
	r.t.stop()
	if a := r.t.ahead; a != nil {
		a.mu.Lock()
		a.done.Broadcast()
		a.mu.Unlock()
	}
}

// errno maps our errors to what a system call returns, and logs the failure
// once, saying what happened on which path. Anything but a missing or
// forbidden path and an interrupt is EIO, including network failures whose
// errno (ECONNRESET, ETIMEDOUT...) would mean nothing to a reader of a file.
func (t *tree) errno(op, p string, err error) syscall.Errno {
	var e syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.Is(err, iofs.ErrNotExist):
		e = syscall.ENOENT
		t.log.Debug(op+": not found", "path", p)
		return e
	case errors.Is(err, iofs.ErrPermission):
		e = syscall.EACCES
	case errors.Is(err, context.Canceled) && t.base.Err() == nil:
		e = syscall.EINTR // the kernel's interrupt; after Stop, EIO (Go's os package retries EINTR)
	default:
		e = syscall.EIO
	}
	t.log.Warn(op+" failed", "path", p, "errno", e.Error(), "err", err)
	return e
}

// ino gives every remote path and type a stable inode number. A file's
// number also carries its version (size and time): a new version is a new
// inode to the kernel, so nothing cached for the old one (pages, a
// passthrough backing file) serves the new.
func ino(p string, e stage.Entry) uint64 {
	// FNV-1a, 64 bit.
	h := uint64(14695981039346656037)
	mix := func(b byte) {
		h ^= uint64(b)
		h *= 1099511628211
	}
	for i := 0; i < len(p); i++ {
		mix(p[i])
	}
	mix(byte(e.Type))
	if e.Type == stage.File {
		for _, v := range []int64{e.Size, e.ModTime.UnixNano()} {
			for i := range 8 {
				mix(byte(v >> (8 * i)))
			}
		}
	}
	if h <= 1 {
		h += 2 // 1 is the root's
	}
	return h
}
