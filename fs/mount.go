package fs

import (
	"fmt"
	"os"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// MountOptions are the kernel-facing choices of a mount.
type MountOptions struct {
	AllowOther bool   // let other local users in (exclusive-access data!)
	Debug      bool   // log every FUSE request
	Source     string // shown as the mount's source in /proc/mounts, e.g. the server
}

// Mount mounts root read-only at dir and returns once the kernel has it.
// As root it mounts with mount(2) directly; otherwise through fusermount3.
// o must be the Options root was made with. Passthrough needs nothing else
// from the caller: a *Root mounted here asks the kernel for it (which
// takes CAP_SYS_ADMIN and Linux 6.9) and falls back on its own.
func Mount(dir string, root gofs.InodeEmbedder, o Options, mo MountOptions) (*fuse.Server, error) {
	o = o.withDefaults()
	src := mo.Source
	if src == "" {
		src = "mastfs"
	}
	direct := os.Geteuid() == 0
	opts := &gofs.Options{
		EntryTimeout:    &o.DirTTL,
		AttrTimeout:     &o.DirTTL,
		NegativeTimeout: &o.NegativeTTL,
		UID:             o.UID,
		GID:             o.GID,
		MountOptions: fuse.MountOptions{
			FsName:      src,
			Name:        "mastfs",
			Options:     []string{"ro"},
			AllowOther:  mo.AllowOther,
			Debug:       mo.Debug,
			DirectMount: direct,
			// Read-ahead of a chunk: a sequential reader's requests are
			// 1 MiB rather than 128 KiB, a quarter of the CPU per byte
			// spent on requests and wake-ups. MaxWrite sets the kernel's
			// largest request (max_pages), reads included.
			MaxReadAhead: 1 << 20,
			MaxWrite:     1 << 20,
			// Kernel requests arrive in parallel; the cache orders them.
			MaxBackground: 64,
		},
	}
	if o.Passthrough && !o.ForceNoPassthrough {
		// Cache files on a stacked file system (overlayfs, as in many
		// containers) are one level down: allow it, at the price that
		// this mount cannot itself be a layer of an overlay.
		opts.MountOptions.MaxStackDepth = 2
	}
	if direct {
		opts.MountOptions.DirectMountFlags = directMountFlags
	}
	srv, err := gofs.Mount(dir, root, opts)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	if r, ok := root.(*Root); ok {
		r.t.pt.srv.Store(srv) // a backingRegistrar on Linux
	}
	return srv, nil
}
