package fs

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"path"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"mastfs/fs/stage"
)

// probe is what the server said of a name looked up by its path, for a
// directory whose listing did not show it.
type probe struct {
	at    time.Time
	err   error   // nil: a directory; else why not (missing, or a failure)
	found *loaded // the directory's own listing, when the probe read one
}

// entry finds name in the directory. A name that a readable, non-empty
// listing does not show is missing, at no cost. A directory whose listing
// is refused or empty may still hold names the server will not show (a
// directory the user may traverse but not read): there each name is
// asked of the server by its path.
func (d *dirNode) entry(ctx context.Context, name string) (stage.Entry, error) {
	ents, err := d.listing(ctx)
	switch {
	case err == nil && len(ents) > 0:
		if e, ok := ents[name]; ok {
			return e, nil
		}
		return stage.Entry{}, fmt.Errorf("%s not listed: %w", path.Join(d.remote, name), iofs.ErrNotExist)
	case err == nil, errors.Is(err, iofs.ErrPermission):
		return d.probe(name)
	}
	return stage.Entry{}, err
}

// probe lists name as a directory of its own, remembering the answer: a
// directory for DirTTL, a missing name for NegativeTTL.
func (d *dirNode) probe(name string) (stage.Entry, error) {
	dir := stage.Entry{Name: name, Type: stage.Dir}
	d.mu.Lock()
	pr, ok := d.probes[name]
	d.mu.Unlock()
	if ok && d.t.since(pr.at) < d.probeTTL(pr) {
		return dir, pr.err
	}
	p := path.Join(d.remote, name)
	// Keyed as the child's own listing would be: one listing serves both.
	v, err, _ := d.t.lists.Do(p, func() (any, error) {
		lctx, cancel := d.t.shared()
		defer cancel()
		return d.t.load(lctx, p)
	})
	pr = probe{at: d.t.now(), err: err}
	switch {
	case err == nil:
		l := v.(loaded)
		pr.found = &l
	case errors.Is(err, iofs.ErrPermission):
		pr.err = nil // there, but closed: a directory whose listing is refused
	case !errors.Is(err, iofs.ErrNotExist):
		return dir, err // a failure says nothing of the name: not remembered
	}
	d.mu.Lock()
	if d.probes == nil {
		d.probes = map[string]probe{}
	}
	for n, old := range d.probes {
		if d.t.since(old.at) >= d.probeTTL(old) {
			delete(d.probes, n)
		}
	}
	d.probes[name] = pr
	d.mu.Unlock()
	return dir, pr.err
}

func (d *dirNode) probeTTL(pr probe) time.Duration {
	if pr.err != nil {
		return d.t.opts.NegativeTTL
	}
	return d.t.opts.DirTTL
}

// adopt gives a directory found by a probe the listing the probe read, so
// reading it costs no second round trip.
func (d *dirNode) adopt(ch *gofs.Inode, name string) {
	n, ok := ch.Operations().(*dirNode)
	if !ok {
		return
	}
	d.mu.Lock()
	pr := d.probes[name]
	found := pr.found
	if found != nil {
		pr.found = nil // given once
		d.probes[name] = pr
	}
	d.mu.Unlock()
	if found == nil {
		return
	}
	n.mu.Lock()
	if n.entries == nil && n.denied == nil {
		n.entries, n.fetched, n.stale = found.entries, pr.at, found.stale
	}
	n.mu.Unlock()
}
