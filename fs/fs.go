// Package fs presents a remote stage as a read-only FUSE file system: a
// go-fuse node tree built lazily from directory listings, with file contents
// served through the chunk cache. It speaks go-fuse, the Lister interface and
// the cache; it never speaks FTP.
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

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sync/singleflight"

	"mastfs/cache"
	"mastfs/fs/stage"
)

// Lister reads remote directories. Errors wrap io/fs.ErrNotExist for a
// missing directory and io/fs.ErrPermission for one the user may not read.
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
}

// NewRoot returns the root node of a tree showing opts.RemoteDir.
func NewRoot(l Lister, c Contents, opts Options) gofs.InodeEmbedder {
	opts = opts.withDefaults()
	t := &tree{opts: opts, lister: l, contents: c, log: opts.Logger}
	t.ahead = newAhead(t, opts.ListAhead)
	return &dirNode{t: t, remote: opts.RemoteDir}
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
	case errors.Is(err, context.Canceled):
		e = syscall.EINTR
	default:
		e = syscall.EIO
	}
	t.log.Warn(op+" failed", "path", p, "errno", e.Error(), "err", err)
	return e
}

// ino gives every remote path and type a stable inode number.
func ino(p string, t stage.EntryType) uint64 {
	// FNV-1a, 64 bit.
	h := uint64(14695981039346656037)
	for i := 0; i < len(p); i++ {
		h ^= uint64(p[i])
		h *= 1099511628211
	}
	h ^= uint64(t)
	h *= 1099511628211
	if h <= 1 {
		h += 2 // 1 is the root's
	}
	return h
}
