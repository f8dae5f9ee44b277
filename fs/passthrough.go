package fs

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mastfs/cache"
)

// Backer is what Contents may also offer: the local file that holds every
// byte of a version, kept (not evicted) until release is called. ok is
// false while any byte of that version is missing.
type Backer interface {
	Backing(k cache.Key) (f *os.File, release func(), ok bool)
}

// backingRegistrar is the part of a FUSE server that hands backing files
// to the kernel (Linux only).
type backingRegistrar interface {
	RegisterBackingFd(*fuse.BackingMap) (int32, syscall.Errno)
	UnregisterBackingFd(int32) syscall.Errno
}

// Read paths a file may be served by, as ReadPath reports them.
const (
	PathPassthrough = "passthrough"
	PathFUSE        = "fuse"
)

const (
	ptUntried = iota // no backing file offered to the kernel yet
	ptOn             // the kernel took one
	ptRefused        // the kernel refused one, or passthrough is off
)

// passthrough decides whether opens hand the kernel a backing file.
type passthrough struct {
	backer Backer // nil: passthrough off
	log    *slog.Logger
	srv    atomic.Value // the backingRegistrar of the mount, once mounted
	opens  atomic.Int64 // opens served in passthrough

	mu    sync.Mutex // guards state
	state int
}

func (p *passthrough) init(c Contents, o Options) {
	p.log = o.Logger
	b, ok := c.(Backer)
	switch {
	case !o.Passthrough || !ok:
		p.state = ptRefused
	case o.ForceNoPassthrough:
		p.state = ptRefused
		p.log.Info("passthrough off by request; reading through FUSE")
	default:
		p.backer = b
	}
}

// usable says whether the kernel takes backing files, asking it once with
// f: the library that opens files gives up passthrough silently when the
// kernel refuses, so the first offer is made here, where it can be seen.
func (p *passthrough) usable(f *os.File) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != ptUntried {
		return p.state == ptOn
	}
	reg, ok := p.srv.Load().(backingRegistrar)
	if !ok {
		return false // not mounted through Mount yet: nothing to ask
	}
	id, errno := reg.RegisterBackingFd(&fuse.BackingMap{Fd: int32(f.Fd())})
	if errno != 0 {
		p.state = ptRefused
		p.log.Warn("kernel refused passthrough; reading through FUSE", "errno", errno.Error())
		return false
	}
	reg.UnregisterBackingFd(id)
	p.state = ptOn
	p.log.Info("passthrough on: wholly cached files are read by the kernel from the cache")
	return true
}

func (p *passthrough) refused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state == ptRefused
}

// ReadPath says which path wholly cached files are read by: PathPassthrough
// once the kernel has taken a backing file, PathFUSE otherwise.
func (r *Root) ReadPath() string {
	r.t.pt.mu.Lock()
	defer r.t.pt.mu.Unlock()
	if r.t.pt.state == ptOn {
		return PathPassthrough
	}
	return PathFUSE
}

// PassthroughOpens counts the opens served in passthrough.
func (r *Root) PassthroughOpens() int64 { return r.t.pt.opens.Load() }

// openThrough returns a passthrough handle for the file, or nil for the
// FUSE read path. The kernel serves an inode either way but not both at
// once (an open of the other kind fails with ETXTBSY), so while handles of
// one kind are open, a new open takes the same kind. Called with f.mu held.
func (f *fileNode) openThrough() gofs.FileHandle {
	pt := &f.t.pt
	if pt.refused() || f.normal > 0 {
		return nil
	}
	file, release, ok := pt.backer.Backing(f.key())
	if !ok {
		if f.through > 0 {
			return &throughHandle{f: f} // the kernel holds the backing file already
		}
		return nil
	}
	if f.through == 0 && !pt.usable(file) {
		release()
		return nil
	}
	pt.opens.Add(1)
	return &throughHandle{f: f, file: file, release: release}
}

// throughHandle is a file open in passthrough: the kernel reads file.
type throughHandle struct {
	f       *fileNode
	file    *os.File
	release func()
}

var (
	_ = (gofs.FilePassthroughFder)((*throughHandle)(nil))
	_ = (gofs.FileReleaser)((*throughHandle)(nil))
)

func (h *throughHandle) PassthroughFd() (int, bool) {
	if h.file == nil {
		return -1, false
	}
	return int(h.file.Fd()), true
}

func (h *throughHandle) Release(ctx context.Context) syscall.Errno {
	h.f.mu.Lock()
	h.f.through--
	h.f.mu.Unlock()
	if h.release != nil {
		h.release()
	}
	return 0
}
