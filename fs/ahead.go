package fs

import (
	"path"
	"sync"
	"time"

	"mastfs/fs/stage"
)

// ahead lists the subdirectories of a directory being read before they are
// asked for, a few at a time. ls -lR, find and du walk a tree one directory
// after another, and far from the server each listing costs several round
// trips; listed side by side over the pool, the walk waits for few of them.
// Each directory is still listed once per TTL.
type ahead struct {
	t     *tree
	fixed int // listings ahead at once when there is no Budget

	mu      sync.Mutex // guards got, pruned, running
	got     map[string]aheadListing
	pruned  time.Time // when tree.listed was last swept
	running int       // listings ahead in flight
	done    *sync.Cond
}

type aheadListing struct {
	res loaded
	at  time.Time
}

const (
	aheadKept   = 4096 // listings waiting to be asked for, at most
	aheadPerDir = 256  // a directory with more subdirectories lists none ahead
)

func newAhead(t *tree, parallel int) *ahead {
	if parallel <= 0 {
		return nil
	}
	a := &ahead{t: t, fixed: parallel, got: map[string]aheadListing{}}
	a.done = sync.NewCond(&a.mu)
	return a
}

// limit is how many listings ahead may run at once now: all the server's
// connections but one when the budget is known.
func (a *ahead) limit() int {
	if a.t.opts.Budget != nil {
		return a.t.opts.Budget() - 1
	}
	return a.fixed
}

// start lists dirs in the background, skipping those already listed.
func (a *ahead) start(dirs []string) {
	if a == nil || len(dirs) == 0 || len(dirs) > aheadPerDir || a.limit() <= 0 {
		return
	}
	a.mu.Lock()
	for dir, l := range a.got {
		if a.t.since(l.at) >= a.t.opts.DirTTL {
			delete(a.got, dir) // listed ahead for a walk that went elsewhere
		}
	}
	if a.t.since(a.pruned) >= a.t.opts.DirTTL {
		// The times of listings older than a TTL no longer decide anything.
		a.pruned = a.t.now()
		a.t.listed.Range(func(k, v any) bool {
			if a.t.since(v.(time.Time)) >= a.t.opts.DirTTL {
				a.t.listed.Delete(k)
			}
			return true
		})
	}
	room := aheadKept - len(a.got)
	a.mu.Unlock()
	if room < len(dirs) {
		return
	}
	for _, dir := range dirs {
		go a.list(dir)
	}
}

// list lists dir ahead once a slot is free, unless it was listed meanwhile.
func (a *ahead) list(dir string) {
	a.mu.Lock()
	for a.running >= max(a.limit(), 1) && a.t.base.Err() == nil {
		a.done.Wait()
	}
	a.running++
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.running--
		a.mu.Unlock()
		a.done.Broadcast()
	}()
	if a.t.base.Err() != nil {
		return
	}
	if at, ok := a.t.listed.Load(dir); ok && a.t.since(at.(time.Time)) < a.t.opts.DirTTL {
		return // listed meanwhile, for the walk itself
	}
	v, err, _ := a.t.lists.Do(dir, func() (any, error) {
		ctx, cancel := a.t.shared()
		defer cancel()
		return a.t.load(ctx, dir)
	})
	if err != nil || v.(loaded).stale {
		return // the directory's own lookup will say what is wrong
	}
	a.mu.Lock()
	a.got[dir] = aheadListing{res: v.(loaded), at: a.t.now()}
	a.mu.Unlock()
}

// take returns the listing of dir made ahead, if it is still fresh.
func (a *ahead) take(dir string) (loaded, bool) {
	if a == nil {
		return loaded{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	l, ok := a.got[dir]
	delete(a.got, dir)
	return l.res, ok && a.t.since(l.at) < a.t.opts.DirTTL
}

// drop forgets the listings made ahead under dir.
func (a *ahead) drop(under func(string) bool) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for dir := range a.got {
		if under(dir) {
			delete(a.got, dir)
		}
	}
}

// subdirs are the directories among a listing's entries whose own listing
// is not fresh in memory.
func (d *dirNode) subdirs(ents map[string]stage.Entry) []string {
	var out []string
	for name, e := range ents {
		if e.Type != stage.Dir {
			continue
		}
		if ch := d.GetChild(name); ch != nil {
			if n, ok := ch.Operations().(*dirNode); ok && n.fresh() {
				continue
			}
		}
		out = append(out, path.Join(d.remote, name))
	}
	return out
}

func (d *dirNode) fresh() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.entries != nil && !d.stale && d.t.since(d.fetched) < d.t.opts.DirTTL
}
