package fs

import (
	"context"
	"errors"
	"io"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mastfs/cache"
	"mastfs/fs/stage"
)

// fileNode is a remote file. Its attributes come from its directory's
// listing; its bytes from the cache.
type fileNode struct {
	gofs.Inode
	t      *tree
	remote string

	mu     sync.Mutex // guards entry, opened
	entry  stage.Entry
	opened *stage.Entry // the version served at the last open, for the kernel's page cache
}

var (
	_ = (gofs.NodeGetattrer)((*fileNode)(nil))
	_ = (gofs.NodeOpener)((*fileNode)(nil))
	_ = (gofs.NodeReader)((*fileNode)(nil))
)

func (f *fileNode) update(e stage.Entry) {
	f.mu.Lock()
	f.entry = e
	f.mu.Unlock()
}

func (f *fileNode) current() stage.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.entry
}

func (f *fileNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.t.fill(f.current(), &out.Attr)
	out.SetTimeout(f.t.opts.DirTTL)
	return 0
}

func (f *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND|syscall.O_CREAT) != 0 {
		return nil, 0, syscall.EROFS
	}
	f.t.opened(f)
	f.mu.Lock()
	defer f.mu.Unlock()
	var fl uint32
	if f.opened != nil && f.opened.Size == f.entry.Size && f.opened.ModTime.Equal(f.entry.ModTime) {
		// Same version as before: what the kernel cached is still right.
		fl |= fuse.FOPEN_KEEP_CACHE
	}
	e := f.entry
	f.opened = &e
	return nil, fl, 0
}

func (f *fileNode) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	e := f.current()
	if off >= e.Size {
		return fuse.ReadResultData(nil), 0
	}
	k := cache.Key{Path: f.remote, Size: e.Size, ModTime: e.ModTime}
	n, err := f.t.contents.ReadAt(ctx, k, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, f.t.errno("read", f.remote, err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// linkNode is a server-side symbolic link. It reads as the file it names
// when that lies inside the mount; one leading outside, or nowhere, is
// listed but gives ENOENT.
type linkNode struct {
	gofs.Inode
	t      *tree
	remote string

	mu    sync.Mutex // guards entry
	entry stage.Entry
}

var (
	_ = (gofs.NodeGetattrer)((*linkNode)(nil))
	_ = (gofs.NodeReadlinker)((*linkNode)(nil))
)

func (l *linkNode) update(e stage.Entry) {
	l.mu.Lock()
	l.entry = e
	l.mu.Unlock()
}

func (l *linkNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	l.mu.Lock()
	e := l.entry
	l.mu.Unlock()
	l.t.fill(e, &out.Attr)
	out.SetTimeout(l.t.opts.DirTTL)
	return 0
}

func (l *linkNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	l.mu.Lock()
	target := l.entry.Target
	l.mu.Unlock()
	rel, ok := localTarget(l.t.opts.RemoteDir, l.remote, target)
	if !ok {
		l.t.log.Info("symlink leads outside the mount", "path", l.remote, "target", target)
		return nil, syscall.ENOENT
	}
	return []byte(rel), 0
}

// localTarget rewrites a server symlink target as a path relative to the
// link, valid inside a mount of root. ok is false when the target leaves root.
func localTarget(root, link, target string) (string, bool) {
	if target == "" || strings.ContainsRune(target, 0) {
		return "", false
	}
	dir := path.Dir(link)
	abs := target
	if !path.IsAbs(abs) {
		abs = path.Join(dir, target)
	}
	abs = path.Clean(abs)
	if root != "/" && abs != root && !strings.HasPrefix(abs, root+"/") {
		return "", false
	}
	// Relative from the link's directory, so the kernel resolves it inside the mount.
	from, to := elements(dir), elements(abs)
	i := 0
	for i < len(from) && i < len(to) && from[i] == to[i] {
		i++
	}
	parts := make([]string, 0, len(from)-i+len(to)-i)
	for range from[i:] {
		parts = append(parts, "..")
	}
	parts = append(parts, to[i:]...)
	if len(parts) == 0 {
		return ".", true
	}
	return strings.Join(parts, "/"), true
}

// elements splits a clean absolute path into its names; "/" has none.
func elements(p string) []string {
	if p == "/" {
		return nil
	}
	return strings.Split(strings.TrimPrefix(p, "/"), "/")
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
