package fs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"path"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"mastfs/fs/stage"

	"github.com/hanwen/go-fuse/v2/fuse"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// dirNode is a remote directory. Its listing is fetched on first use and
// again after DirTTL; attributes of its children come from that listing only.
type dirNode struct {
	gofs.Inode
	t      *tree
	remote string

	mu      sync.Mutex // guards entries, fetched, stale, self
	entries map[string]stage.Entry
	fetched time.Time
	stale   bool        // entries are a kept copy: the server did not answer
	self    stage.Entry // this directory as its parent listed it

	refreshing atomic.Bool // a background refresh of a stale listing is running
}

var (
	_ = (gofs.NodeLookuper)((*dirNode)(nil))
	_ = (gofs.NodeReaddirer)((*dirNode)(nil))
	_ = (gofs.NodeGetattrer)((*dirNode)(nil))
	_ = (gofs.NodeStatfser)((*dirNode)(nil))
	_ = (gofs.NodeOpendirer)((*dirNode)(nil))
)

// listingRecord is the kind under which listings are kept on disk, so a
// mount can serve them while the server is unreachable.
const listingRecord = "listing"

// listing returns the directory's entries, from memory while fresh. Once
// the server has failed to answer for it, the copy kept (on disk or in
// memory) is served at once while the server is asked again in the
// background: a server gone silent costs a directory one wait, not one
// per access.
func (d *dirNode) listing(ctx context.Context) (map[string]stage.Entry, error) {
	d.mu.Lock()
	e, fresh, stale := d.entries, time.Since(d.fetched) < d.t.opts.DirTTL, d.stale
	d.mu.Unlock()
	switch {
	case e != nil && fresh:
		return e, nil
	case e != nil && stale:
		if d.refreshing.CompareAndSwap(false, true) {
			go func() {
				defer d.refreshing.Store(false)
				d.refresh(context.WithoutCancel(ctx))
			}()
		}
		return e, nil
	}
	return d.refresh(ctx)
}

// refresh lists the directory on the server (falling back to the copy
// kept on disk, then to the one in memory, when it cannot be reached) and
// installs the result.
func (d *dirNode) refresh(ctx context.Context) (map[string]stage.Entry, error) {
	v, err, _ := d.t.lists.Do(d.remote, func() (any, error) {
		// Shared by every waiter: not bound to the first caller's interrupt.
		if res, ok := d.t.ahead.take(d.remote); ok {
			return res, nil
		}
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.t.opts.OpTimeout)
		defer cancel()
		return d.t.load(lctx, d.remote)
	})
	d.mu.Lock()
	old := d.entries
	var res loaded
	switch {
	case err == nil:
		res = v.(loaded)
	case old != nil && !errors.Is(err, iofs.ErrNotExist) && !errors.Is(err, iofs.ErrPermission):
		// Unreachable and nothing on disk (a cache that was deleted or
		// is full): the copy in memory will do.
		d.t.log.Warn("server unreachable; serving the listing kept in memory", "dir", d.remote, "err", err)
		res = loaded{entries: old, stale: true}
	default:
		d.mu.Unlock()
		return nil, err
	}
	d.entries, d.fetched, d.stale = res.entries, time.Now(), res.stale
	if res.stale {
		// Try the server again soon rather than after a whole TTL.
		d.fetched = time.Now().Add(-d.t.opts.DirTTL + d.t.opts.NegativeTTL)
	}
	d.mu.Unlock()
	if old != nil && !res.stale {
		d.dropVanished(old, res.entries)
	}
	return res.entries, nil
}

// dropVanished forgets what the server no longer has: staged directories
// are deleted some days after staging, and their cached chunks go first.
func (d *dirNode) dropVanished(old, now map[string]stage.Entry) {
	for name, e := range old {
		n, ok := now[name]
		if ok && n.Type == e.Type && n.Size == e.Size && n.ModTime.Equal(e.ModTime) {
			continue
		}
		if !ok {
			p := path.Join(d.remote, name)
			if err := d.t.contents.Forget(p); err != nil {
				d.t.log.Warn("forget vanished entry", "path", p, "err", err)
			}
			d.t.log.Info("entry vanished from server", "path", p)
		}
		// The kernel holds this directory's lock during lookups: notify
		// from outside the request.
		go d.NotifyEntry(name)
	}
}

type loaded struct {
	entries map[string]stage.Entry
	stale   bool
}

// load lists dir on the server; when the server cannot be reached it falls
// back to the listing kept on disk.
func (t *tree) load(ctx context.Context, dir string) (loaded, error) {
	list, err := t.lister.List(ctx, dir)
	if err == nil {
		t.listed.Store(dir, time.Now())
		list = t.usable(dir, list)
		m := make(map[string]stage.Entry, len(list))
		for _, e := range list {
			m[e.Name] = e
		}
		if data, jerr := json.Marshal(list); jerr == nil {
			if perr := t.contents.PutRecord(listingRecord, dir, data); perr != nil {
				t.log.Debug("keep listing on disk", "dir", dir, "err", perr)
			}
		}
		return loaded{entries: m}, nil
	}
	if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, iofs.ErrPermission) {
		return loaded{}, err
	}
	data, rerr := t.contents.GetRecord(listingRecord, dir)
	if rerr != nil {
		return loaded{}, err
	}
	var kept []stage.Entry
	if jerr := json.Unmarshal(data, &kept); jerr != nil {
		return loaded{}, err
	}
	t.log.Warn("server unreachable; serving the listing kept on disk", "dir", dir, "err", err)
	m := make(map[string]stage.Entry, len(kept))
	for _, e := range kept {
		m[e.Name] = e
	}
	return loaded{entries: m, stale: true}, nil
}

// maxName is the longest name a Linux file system holds (NAME_MAX). A
// longer one could be neither copied out nor, on some kernels, looked up,
// and some kernels fail the whole directory listing that holds one.
const maxName = 255

// usable leaves out the names longer than maxName, logging each.
func (t *tree) usable(dir string, list []stage.Entry) []stage.Entry {
	out := list[:0]
	for _, e := range list {
		if len(e.Name) > maxName {
			t.log.Warn("name too long for a local file system; left out", "dir", dir,
				"bytes", len(e.Name), "start", e.Name[:32])
			continue
		}
		out = append(out, e)
	}
	return out
}

func (d *dirNode) Opendir(ctx context.Context) syscall.Errno {
	if _, err := d.listing(ctx); err != nil {
		return d.t.errno("opendir", d.remote, d.refine(ctx, err))
	}
	return 0
}

func (d *dirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	ents, err := d.listing(ctx)
	if err != nil {
		return nil, d.t.errno("readdir", d.remote, d.refine(ctx, err))
	}
	d.t.ahead.start(d.subdirs(ents))
	names := make([]string, 0, len(ents))
	for n := range ents {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]fuse.DirEntry, 0, len(names))
	for _, n := range names {
		e := ents[n]
		out = append(out, fuse.DirEntry{Name: n, Mode: modeType(e.Type), Ino: ino(path.Join(d.remote, n), e.Type)})
	}
	return gofs.NewListDirStream(out), 0
}

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	p := path.Join(d.remote, name)
	ents, err := d.listing(ctx)
	if err != nil {
		if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, iofs.ErrPermission) {
			// A directory we may not list can still hold one we may: the
			// MAST root is closed to anonymous users, their stage is not.
			return d.lookupDirect(ctx, name, out)
		}
		return nil, d.t.errno("lookup", p, err)
	}
	e, ok := ents[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	return d.child(ctx, e, out), 0
}

// lookupDirect tries name as a directory of its own, for a parent whose
// listing is refused.
func (d *dirNode) lookupDirect(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	p := path.Join(d.remote, name)
	child := &dirNode{t: d.t, remote: p}
	if _, err := child.listing(ctx); err != nil {
		return nil, d.t.errno("lookup", p, err)
	}
	e := stage.Entry{Name: name, Type: stage.Dir}
	ch := d.GetChild(name)
	if ch == nil {
		ch = d.NewInode(ctx, child, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino(p, stage.Dir)})
	}
	d.t.fill(e, &out.Attr)
	d.t.timeouts(out)
	return ch, 0
}

// child returns the node for a listed entry, reusing the existing one.
func (d *dirNode) child(ctx context.Context, e stage.Entry, out *fuse.EntryOut) *gofs.Inode {
	p := path.Join(d.remote, e.Name)
	d.t.fill(e, &out.Attr)
	d.t.timeouts(out)
	if ch := d.GetChild(e.Name); ch != nil && ch.StableAttr().Mode == modeType(e.Type) {
		switch n := ch.Operations().(type) {
		case *fileNode:
			n.update(e)
		case *dirNode:
			n.mu.Lock()
			n.self = e
			n.mu.Unlock()
		case *linkNode:
			n.update(e)
		}
		return ch
	}
	var node gofs.InodeEmbedder
	switch e.Type {
	case stage.Dir:
		node = &dirNode{t: d.t, remote: p, self: e}
	case stage.Link:
		node = &linkNode{t: d.t, remote: p, entry: e}
	default:
		node = &fileNode{t: d.t, remote: p, entry: e}
	}
	return d.NewInode(ctx, node, gofs.StableAttr{Mode: modeType(e.Type), Ino: ino(p, e.Type)})
}

// refine tells a directory we may not list from one that is gone: servers
// answer both with 550, and some with an empty listing.
func (d *dirNode) refine(ctx context.Context, err error) error {
	if !errors.Is(err, iofs.ErrNotExist) {
		return err
	}
	_, parent := d.Parent()
	if parent == nil {
		return err
	}
	pd, ok := parent.Operations().(*dirNode)
	if !ok {
		return err
	}
	pd.mu.Lock()
	pd.fetched = time.Time{} // ask the server again
	pd.mu.Unlock()
	ents, perr := pd.listing(ctx)
	if perr != nil {
		return err
	}
	if e, ok := ents[path.Base(d.remote)]; ok && e.Type == stage.Dir {
		return fmt.Errorf("%s is listed by its parent but may not be read (%v): %w", d.remote, err, iofs.ErrPermission)
	}
	return err
}

func (d *dirNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.mu.Lock()
	e := d.self
	d.mu.Unlock()
	e.Type = stage.Dir
	d.t.fill(e, &out.Attr)
	out.SetTimeout(d.t.opts.DirTTL)
	return 0
}

func (d *dirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	const bsize = 4096
	out.Bsize = bsize
	out.Frsize = bsize
	out.NameLen = 255
	if d.t.opts.Statfs != nil {
		total, free := d.t.opts.Statfs()
		out.Blocks = total / bsize
		out.Bfree = free / bsize
		out.Bavail = free / bsize
	}
	return 0
}
