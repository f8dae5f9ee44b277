package fs

import (
	"context"
	"errors"
	"io"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mastfs/cache"
	"mastfs/fs/stage"
)

// fileNode is one version (size and time) of a remote file: a new version
// in a listing is a new node. Its attributes come from its directory's
// listing; its bytes from the cache, or from a backing file the kernel
// reads itself (passthrough).
type fileNode struct {
	gofs.Inode
	t      *tree
	remote string
	entry  stage.Entry

	mu      sync.Mutex // guards normal, through
	normal  int        // handles open on the FUSE read path
	through int        // handles open in passthrough
}

var (
	_ = (gofs.NodeGetattrer)((*fileNode)(nil))
	_ = (gofs.NodeOpener)((*fileNode)(nil))
	_ = (gofs.NodeReader)((*fileNode)(nil))
)

func (f *fileNode) key() cache.Key {
	return cache.Key{Path: f.remote, Size: f.entry.Size, ModTime: f.entry.ModTime}
}

func (f *fileNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.t.fill(f.entry, &out.Attr)
	out.SetTimeout(f.t.opts.DirTTL)
	return 0
}

// Open keeps the kernel's page cache: a node is one version, so what the
// kernel cached for it is still right.
func (f *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND|syscall.O_CREAT) != 0 {
		return nil, 0, syscall.EROFS
	}
	f.t.opened(f)
	f.mu.Lock()
	defer f.mu.Unlock()
	if h := f.openThrough(); h != nil {
		f.through++
		return h, fuse.FOPEN_KEEP_CACHE, 0
	}
	f.normal++
	return &handle{f: f}, fuse.FOPEN_KEEP_CACHE, 0
}

func (f *fileNode) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= f.entry.Size {
		return fuse.ReadResultData(nil), 0
	}
	ctx, cancel := f.t.op(ctx)
	defer cancel()
	n, err := f.t.contents.ReadAt(ctx, f.key(), dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, f.t.errno("read", f.remote, err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// handle is a file open on the FUSE read path.
type handle struct{ f *fileNode }

var _ = (gofs.FileReleaser)((*handle)(nil))

func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.f.mu.Lock()
	h.f.normal--
	h.f.mu.Unlock()
	return 0
}

func modeType(t stage.EntryType) uint32 {
	switch t {
	case stage.Dir:
		return syscall.S_IFDIR
	case stage.Link:
		return syscall.S_IFLNK
	}
	return syscall.S_IFREG
}

// fill sets the attributes of a node from its listing entry: read-only
// modes, the listed size and time.
func (t *tree) fill(e stage.Entry, a *fuse.Attr) {
	a.Mode = modeType(e.Type)
	switch e.Type {
	case stage.Dir:
		a.Mode |= 0o555
		a.Nlink = 2
	case stage.Link:
		a.Mode |= 0o777
		a.Size = uint64(len(e.Target))
		a.Nlink = 1
	default:
		a.Mode |= 0o444
		a.Size = uint64(e.Size)
		a.Blocks = (a.Size + 511) / 512
		a.Nlink = 1
	}
	a.Blksize = 1 << 20
	mt := e.ModTime
	if mt.IsZero() {
		mt = time.Unix(0, 0)
	}
	a.SetTimes(&mt, &mt, &mt)
	a.Uid, a.Gid = t.opts.UID, t.opts.GID
}

func (t *tree) timeouts(out *fuse.EntryOut) {
	out.SetEntryTimeout(t.opts.DirTTL)
	out.SetAttrTimeout(t.opts.DirTTL)
}
