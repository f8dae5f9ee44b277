package fs

import (
	"context"
	"path"
	"strings"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mastfs/fs/stage"
)

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
