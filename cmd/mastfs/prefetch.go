package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"

	"golang.org/x/sync/errgroup"
	"golang.org/x/term"

	"mastfs/cmd/internal/human"
	"mastfs/cmd/internal/mountinfo"
	"mastfs/cmd/mastfs/internal/prefetch"
	"mastfs/cmd/mastfs/internal/status"
)

const prefetchExamples = `  mastfs prefetch ~/stage                      everything in the mount
  mastfs prefetch ~/stage/jw01234*_cal.fits    some files
  mastfs prefetch -j 8 ~/stage/many            8 files at a time
  mastfs prefetch ~/stage > prefetch.log       plain lines instead of a bar
`

// prefetchFile is one file to read.
type prefetchFile struct {
	path  string
	size  int64
	mount string // its mount point
}

func cmdPrefetch(args []string) error {
	fset := flag.NewFlagSet("prefetch", flag.ContinueOnError)
	jobs := fset.Int("j", 4, "`files` read at once (a mount opens at most --max-conns transfers)")
	quiet := fset.Bool("q", false, "no progress, only errors and the summary")
	if err := parse(fset, args, prefetchExamples); err != nil {
		return err
	}
	if fset.NArg() == 0 {
		return usageError{"want at least one PATH in a mastfs mount (see mastfs prefetch --help)"}
	}
	if *jobs < 1 {
		return usageError{"-j: want 1 or more"}
	}
	mounts, err := mountinfo.OfType(fuseType)
	if err != nil {
		return err
	}
	files, total, err := prefetchList(mounts, fset.Args())
	if err != nil {
		return err
	}
	if len(files) == 0 {
		fmt.Println("nothing to prefetch: no files under", fset.Args())
		return nil
	}

	// Figures from the mounts before and after say what came from the server.
	before := map[string]status.Report{}
	for _, f := range files {
		if _, ok := before[f.mount]; !ok {
			if r, err := mountStatus(mountinfo.Mount{Point: f.mount}); err == nil {
				before[f.mount] = r
			}
		}
	}
	var limit int64
	for _, r := range before {
		limit += r.Cache.Limit
	}
	if len(before) > 0 && total > limit {
		fmt.Fprintf(os.Stderr, "mastfs prefetch: warning: %s to read, but the cache holds at most %s: "+
			"the first files will be evicted by the last; prefetch less, or mount with a larger --cache-size\n",
			human.Bytes(total), human.Bytes(limit))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tty := !*quiet && term.IsTerminal(int(os.Stderr.Fd()))
	out := io.Writer(os.Stdout)
	if tty {
		out = os.Stderr
	}
	width := func() int {
		if w, _, err := term.GetSize(int(os.Stderr.Fd())); err == nil {
			return w
		}
		return 80
	}
	p := prefetch.NewProgress(out, tty, width, total, len(files))
	var failed atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(*jobs)
	for _, f := range files {
		g.Go(func() error {
			if gctx.Err() != nil {
				return nil
			}
			err := prefetch.ReadThrough(gctx, f.path, p)
			p.FileDone()
			switch {
			case err != nil && gctx.Err() != nil:
			case err != nil:
				failed.Add(1)
				p.Println(fmt.Sprintf("failed: %s: %v", f.path, err))
			case !tty && !*quiet:
				p.Println(fmt.Sprintf("ok  %10s  %s", human.Bytes(f.size), f.path))
			}
			return nil
		})
	}
	_ = g.Wait()
	p.Finish()

	elapsed := p.Elapsed()
	done, filesDone := p.Done()
	summary := fmt.Sprintf("prefetched %s, %s in %s (%s/s)", human.Plural(filesDone-failed.Load(), "file"),
		human.Bytes(done), human.Duration(elapsed), human.Bytes(int64(float64(done)/max(elapsed.Seconds(), 0.001))))
	var fetched int64
	answered := 0
	for mp, b := range before {
		if a, err := mountStatus(mountinfo.Mount{Point: mp}); err == nil {
			fetched += a.Cache.BytesFetched - b.Cache.BytesFetched
			answered++
		}
	}
	switch {
	case answered == 0:
	case fetched <= 0:
		summary += "; all of it was already cached"
	case fetched >= done:
		summary += fmt.Sprintf("; %s came from the server", human.Bytes(fetched))
	default:
		summary += fmt.Sprintf("; %s came from the server, the rest was already cached", human.Bytes(fetched))
	}
	fmt.Println(summary)
	if ctx.Err() != nil {
		return errors.New("interrupted; what was read so far stays cached")
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d files failed (see above); try again, or see mastfs status and the mount's log", n, len(files))
	}
	return nil
}

// prefetchList walks the paths and returns the regular files under them,
// each once, with their total size. Every path must be in a mastfs mount.
func prefetchList(mounts []mountinfo.Mount, paths []string) ([]prefetchFile, int64, error) {
	var files []prefetchFile
	var total int64
	seen := map[string]bool{}
	add := func(p string, size int64, mount string) {
		if !seen[p] {
			seen[p] = true
			files = append(files, prefetchFile{path: p, size: size, mount: mount})
			total += size
		}
	}
	for _, arg := range paths {
		abs, err := mountinfo.Resolve(arg)
		if err != nil {
			return nil, 0, err
		}
		m, ok := mountinfo.Holding(mounts, abs)
		if !ok {
			return nil, 0, fmt.Errorf("%s: %w; prefetch reads through a mount: mount the stage first, "+
				"and see mastfs status for the mounts there are", abs, errNotMastfs)
		}
		// A path named on the command line is followed if it is a symlink;
		// symlinks met in the walk are not (their targets are in the mount too).
		st, err := os.Stat(abs)
		if err != nil {
			return nil, 0, fmt.Errorf("prefetch %s: %w", abs, err)
		}
		if !st.IsDir() {
			if st.Mode().IsRegular() {
				add(abs, st.Size(), m.Point)
			}
			continue
		}
		err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrPermission) && p != abs {
					fmt.Fprintf(os.Stderr, "mastfs prefetch: skipping %s: permission denied\n", p)
					return filepath.SkipDir
				}
				return err
			}
			if d.Type().IsRegular() {
				info, err := d.Info()
				if err != nil {
					return err
				}
				add(p, info.Size(), m.Point)
			}
			return nil
		})
		if err != nil {
			return nil, 0, fmt.Errorf("prefetch: list %s: %w", abs, err)
		}
	}
	return files, total, nil
}
