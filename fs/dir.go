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

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mastfs/fs/stage"
)

// dirNode is a remote directory. Its listing is fetched on first use and
// again after DirTTL; attributes of its children come from that listing only.
type dirNode struct {
	gofs.Inode
	t      *tree
	remote string

	mu      sync.Mutex // guards entries, fetched, stale, denied, self, probes
	entries map[string]stage.Entry
	fetched time.Time
	stale   bool        // entries are a kept copy: the server did not answer
	denied  error       // the server refused the listing at fetched; entries are empty
	self    stage.Entry // this directory as its parent listed it
	probes  map[string]probe

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
// per access. A refusal is remembered as long as a listing.
func (d *dirNode) listing(ctx context.Context) (map[string]stage.Entry, error) {
	d.mu.Lock()
	e, fresh, stale, denied := d.entries, d.t.since(d.fetched) < d.t.opts.DirTTL, d.stale, d.denied
	d.mu.Unlock()
	switch {
	case denied != nil && fresh:
		return nil, denied
	case e != nil && fresh:
		return e, nil
	case e != nil && stale:
		if d.refreshing.CompareAndSwap(false, true) {
			go func() {
				defer d.refreshing.Store(false)
				d.refresh()
			}()
		}
		return e, nil
	}
	return d.refresh()
}

// refresh lists the directory again and tells the kernel which names
// changed. The kernel holds this directory's lock during lookups, so it
// is told from outside the request.
func (d *dirNode) refresh() (map[string]stage.Entry, error) {
	_, now, changed, err := d.relist()
	if len(changed) > 0 {
		go d.notify(changed)
	}
	return now, err
}

func (d *dirNode) notify(names []string) {
	for _, n := range names {
		d.NotifyEntry(n)
	}
}

// relist lists the directory on the server (falling back to the copy
// kept on disk, then to the one in memory, when it cannot be reached) and
// installs the result. It returns the listing it replaced, the new one,
// and the names whose entry changed.
func (d *dirNode) relist() (old, now map[string]stage.Entry, changed []string, err error) {
	v, err, _ := d.t.lists.Do(d.remote, func() (any, error) {
		if res, ok := d.t.ahead.take(d.remote); ok {
			return res, nil
		}
		lctx, cancel := d.t.shared()
		defer cancel()
		return d.t.load(lctx, d.remote)
	})
	if errors.Is(err, iofs.ErrNotExist) && d.shownByParent() {
		// The parent's listing shows it: some servers answer a directory
		// the user may not read as if it were missing.
		err = fmt.Errorf("%s is listed by its parent but cannot be listed (%v): %w", d.remote, err, iofs.ErrPermission)
	}
	d.mu.Lock()
	old = d.entries
	var res loaded
	switch {
	case err == nil:
		res = v.(loaded)
	case errors.Is(err, iofs.ErrPermission):
		d.entries, d.denied, d.stale, d.fetched = nil, err, false, d.t.now()
		d.mu.Unlock()
		return old, nil, nil, err
	case old != nil && !errors.Is(err, iofs.ErrNotExist):
		// Unreachable and nothing on disk (a cache that was deleted or
		// is full): the copy in memory will do.
		d.t.log.Warn("server unreachable; serving the listing kept in memory", "dir", d.remote, "err", err)
		res = loaded{entries: old, stale: true}
	default:
		d.mu.Unlock()
		return old, nil, nil, err
	}
	d.entries, d.fetched, d.stale, d.denied = res.entries, d.t.now(), res.stale, nil
	if res.stale {
		// Try the server again soon rather than after a whole TTL.
		d.fetched = d.t.now().Add(-d.t.opts.DirTTL + d.t.opts.NegativeTTL)
	}
	d.mu.Unlock()
	if old != nil && !res.stale {
		changed = d.dropVanished(old, res.entries)
	}
	return old, res.entries, changed, nil
}

// shownByParent reports whether the parent's listing in memory shows this
// directory. It costs no round trip.
func (d *dirNode) shownByParent() bool {
	_, parent := d.Parent()
	if parent == nil {
		return false
	}
	var pd *dirNode
	switch n := parent.Operations().(type) {
	case *dirNode:
		pd = n
	case *Root:
		pd = &n.dirNode
	default:
		return false
	}
	pd.mu.Lock()
	defer pd.mu.Unlock()
	e, ok := pd.entries[path.Base(d.remote)]
	return ok && e.Type == stage.Dir
}

// dropVanished forgets what the server no longer has: staged directories
// are deleted some days after staging, and their cached chunks go first.
// It returns the names that are new, gone or changed.
func (d *dirNode) dropVanished(old, now map[string]stage.Entry) []string {
	var changed []string
	for name, e := range old {
		n, ok := now[name]
		if ok && sameEntry(n, e) {
			continue
		}
		if !ok {
			p := path.Join(d.remote, name)
			if err := d.t.contents.Forget(p); err != nil {
				d.t.log.Warn("forget vanished entry", "path", p, "err", err)
			}
			d.t.log.Info("entry vanished from server", "path", p)
		}
		changed = append(changed, name)
	}
	for name := range now {
		if _, ok := old[name]; !ok {
			changed = append(changed, name) // the kernel may remember it missing
		}
	}
	return changed
}

func sameEntry(a, b stage.Entry) bool {
	return a.Type == b.Type && a.Size == b.Size && a.ModTime.Equal(b.ModTime) && a.Target == b.Target
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
		t.listed.Store(dir, t.now())
		list = t.usable(dir, list)
		if data, jerr := json.Marshal(list); jerr == nil {
			if perr := t.contents.PutRecord(listingRecord, dir, data); perr != nil {
				t.log.Debug("keep listing on disk", "dir", dir, "err", perr)
			}
		}
		return loaded{entries: byName(list)}, nil
	}
	if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, iofs.ErrPermission) || t.base.Err() != nil {
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
	return loaded{entries: byName(kept), stale: true}, nil
}

func byName(list []stage.Entry) map[string]stage.Entry {
	m := make(map[string]stage.Entry, len(list))
	for _, e := range list {
		m[e.Name] = e
	}
	return m
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
		return d.t.errno("opendir", d.remote, err)
	}
	return 0
}

func (d *dirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	ents, err := d.listing(ctx)
	if err != nil {
		return nil, d.t.errno("readdir", d.remote, err)
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
		out = append(out, fuse.DirEntry{Name: n, Mode: modeType(e.Type), Ino: ino(path.Join(d.remote, n), e)})
	}
	return gofs.NewListDirStream(out), 0
}

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	e, err := d.entry(ctx, name)
	if err != nil {
		return nil, d.t.errno("lookup", path.Join(d.remote, name), err)
	}
	ch := d.child(ctx, e)
	d.adopt(ch, name)
	d.t.fill(e, &out.Attr)
	d.t.timeouts(out)
	return ch, 0
}

// child returns the node for a listed entry, reusing the existing one
// when it is the same version.
func (d *dirNode) child(ctx context.Context, e stage.Entry) *gofs.Inode {
	p := path.Join(d.remote, e.Name)
	id := gofs.StableAttr{Mode: modeType(e.Type), Ino: ino(p, e)}
	if ch := d.GetChild(e.Name); ch != nil && ch.StableAttr() == id {
		switch n := ch.Operations().(type) {
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
	return d.NewInode(ctx, node, id)
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
