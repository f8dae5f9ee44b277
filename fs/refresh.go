package fs

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"mastfs/fs/stage"
)

// RefreshReport says what a Refresh dropped and what it found changed in
// the directory it listed again. Paths are relative to the mount's root.
type RefreshReport struct {
	Dirs                    int // listings dropped
	Added, Removed, Changed []string
}

// Refresh drops the listings of rel (relative to the mount's root; "" or
// "." for all) and of every directory under it, so that the next access
// lists them again, and lists rel itself now. A stage fills over minutes:
// this shows what arrived without waiting out the TTL. The report compares
// rel's new listing with the one it replaces. It tells the kernel to forget
// names, so it must not be called from within a FUSE request.
func (r *Root) Refresh(ctx context.Context, rel string) (RefreshReport, error) {
	rel = strings.TrimPrefix(path.Clean("/"+rel), "/")
	target := path.Join(r.remote, rel)
	under := func(dir string) bool {
		return dir == target || target == "/" || strings.HasPrefix(dir, target+"/")
	}
	var rep RefreshReport
	var dropped []*dirNode
	walkDirs(&r.dirNode, func(d *dirNode) {
		if under(d.remote) {
			if d.drop() {
				rep.Dirs++
			}
			dropped = append(dropped, d)
		}
	})
	r.t.ahead.drop(under)
	r.t.listed.Range(func(k, _ any) bool {
		if under(k.(string)) {
			r.t.listed.Delete(k)
		}
		return true
	})
	// Names the kernel knows under rel are looked up again, and so reach
	// the listings dropped above.
	for _, d := range dropped {
		for name := range d.Children() {
			d.NotifyEntry(name)
		}
	}

	d, err := r.resolve(ctx, rel)
	if err != nil {
		return rep, err
	}
	old, now, changed, err := d.relist()
	if err != nil {
		return rep, fmt.Errorf("refresh %s: %w", target, err)
	}
	d.notify(changed)
	for name, e := range now {
		o, ok := old[name]
		switch {
		case !ok:
			rep.Added = append(rep.Added, path.Join(rel, name))
		case !sameEntry(o, e):
			rep.Changed = append(rep.Changed, path.Join(rel, name))
		}
	}
	for name := range old {
		if _, ok := now[name]; !ok {
			rep.Removed = append(rep.Removed, path.Join(rel, name))
		}
	}
	slices.Sort(rep.Added)
	slices.Sort(rep.Removed)
	slices.Sort(rep.Changed)
	return rep, nil
}

// drop forgets when the directory was listed, so its next access lists it
// again; the entries stay, to compare against and to serve while the
// server cannot be reached. It says whether there was a listing to drop.
func (d *dirNode) drop() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	had := d.entries != nil || d.denied != nil
	d.fetched, d.stale, d.denied, d.probes = time.Time{}, false, nil, nil
	return had
}

// walkDirs calls fn for d and every directory node under it.
func walkDirs(d *dirNode, fn func(*dirNode)) {
	fn(d)
	for _, ch := range d.Children() {
		if n, ok := ch.Operations().(*dirNode); ok {
			walkDirs(n, fn)
		}
	}
}

// resolve finds the directory node at rel, making the nodes on its way
// that no lookup has made yet.
func (r *Root) resolve(ctx context.Context, rel string) (*dirNode, error) {
	d := &r.dirNode
	if rel == "" {
		return d, nil
	}
	for _, name := range strings.Split(rel, "/") {
		e, err := d.entry(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("refresh %s: %w", path.Join(d.remote, name), err)
		}
		if e.Type != stage.Dir {
			return nil, fmt.Errorf("refresh %s: %w", path.Join(d.remote, name), syscall.ENOTDIR)
		}
		ch := d.child(ctx, e)
		d.adopt(ch, name)
		if d.GetChild(name) != ch {
			d.AddChild(name, ch, true)
		}
		d = ch.Operations().(*dirNode)
	}
	return d, nil
}

var _ = (gofs.InodeEmbedder)((*Root)(nil))
