package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"mastfs/cache"
	"mastfs/cmd/internal/human"
	"mastfs/cmd/internal/mountinfo"
	"mastfs/ftps"
)

const cacheUsage = `Usage:
  mastfs cache du [flags]      what is cached, per file
  mastfs cache clear [flags]   delete what is cached (refused while a mount uses the cache)

Flags (both):
  --cache-dir DIR    the cache directory, as given to mastfs mount
  --host, --user     or the server and user whose default cache directory to use
                     ($XDG_CACHE_HOME/mastfs/HOST/USER; default archive.stsci.edu, anonymous)
  --json             du only: print JSON

Examples:
  mastfs cache du
  mastfs cache du --user me@example.org
  mastfs cache clear --cache-dir /scratch/mastfs-cache
`

func cmdCache(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, cacheUsage)
		return usageError{}
	}
	switch args[0] {
	case "du":
		return cmdCacheDu(args[1:])
	case "clear":
		return cmdCacheClear(args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Print(cacheUsage)
		return errHelp
	}
	return usageError{fmt.Sprintf("unknown cache command %q: want du or clear (see mastfs cache --help)", args[0])}
}

// cacheDirFlags choose a cache directory.
type cacheDirFlags struct {
	dir, host, user string
}

func (c *cacheDirFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.dir, "cache-dir", "", "the cache `directory`, as given to mastfs mount")
	fs.StringVar(&c.host, "host", ftps.DefaultHost, "server `host` whose default cache directory to use")
	fs.StringVar(&c.user, "user", "anonymous", "login `name` whose default cache directory to use")
}

// resolve returns the cache directory the flags name.
func (c *cacheDirFlags) resolve() (string, error) {
	if c.dir != "" {
		return filepath.Abs(c.dir)
	}
	host, _, _, _, err := ftps.ParseAddress(c.host)
	if err != nil {
		return "", usageError{err.Error()}
	}
	return defaultCacheDir(host, c.user)
}

func cmdCacheDu(args []string) error {
	var c cacheDirFlags
	fset := flag.NewFlagSet("cache du", flag.ContinueOnError)
	c.register(fset)
	asJSON := fset.Bool("json", false, "print JSON")
	if err := parse(fset, args, "  mastfs cache du\n  mastfs cache du --cache-dir /scratch/mastfs-cache\n"); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return usageError{"cache du takes no arguments (see mastfs cache --help)"}
	}
	dir, err := c.resolve()
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no cache at %s: nothing was cached for this server and user yet; "+
			"name the cache with --cache-dir, or the mount's server and user with --host and --user", dir)
	}
	files, err := cache.Inventory(dir)
	if err != nil {
		return err
	}
	if *asJSON {
		type fileJSON struct {
			Path   string `json:"path"`
			Cached int64  `json:"cached_bytes"`
			Size   int64  `json:"size"`
			Chunks int    `json:"chunks"`
		}
		out := make([]fileJSON, 0, len(files))
		for _, f := range files {
			out = append(out, fileJSON{f.Path, f.Cached, f.Size, f.Chunks})
		}
		return printJSON(os.Stdout, out)
	}
	printDu(os.Stdout, dir, files)
	return nil
}

// printDu writes one line per cached file, then the totals.
func printDu(w io.Writer, dir string, files []cache.FileUsage) {
	if len(files) == 0 {
		fmt.Fprintf(w, "nothing cached in %s\n", dir)
		return
	}
	var cached, onDisk int64
	fmt.Fprintf(w, "%10s  %10s  %5s  %s\n", "CACHED", "SIZE", "", "FILE")
	for _, f := range files {
		pct := 100.0
		if f.Size > 0 {
			pct = 100 * float64(f.Cached) / float64(f.Size)
		}
		fmt.Fprintf(w, "%10s  %10s  %4.0f%%  %s\n", human.Bytes(f.Cached), human.Bytes(f.Size), pct, f.Path)
		cached += f.Cached
		onDisk += f.OnDisk
	}
	fmt.Fprintf(w, "%s, %s cached (%s on disk) in %s\n", human.Plural(int64(len(files)), "file"), human.Bytes(cached), human.Bytes(onDisk), dir)
}

func cmdCacheClear(args []string) error {
	var c cacheDirFlags
	fset := flag.NewFlagSet("cache clear", flag.ContinueOnError)
	c.register(fset)
	if err := parse(fset, args, "  mastfs cache clear\n  mastfs cache clear --user me@example.org\n"); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return usageError{"cache clear takes no arguments (see mastfs cache --help)"}
	}
	dir, err := c.resolve()
	if err != nil {
		return err
	}
	gone, err := cache.Clear(dir)
	if errors.Is(err, cache.ErrInUse) {
		users := mountsUsing(dir)
		hint := "unmount it first (mastfs unmount MOUNTPOINT), then clear"
		if len(users) > 0 {
			hint = "unmount it first (mastfs unmount " + users[0] + "), then clear"
		}
		return fmt.Errorf("%w; nothing was deleted: %s", err, hint)
	}
	if err != nil {
		return err
	}
	var n int64
	for _, f := range gone {
		n += f.OnDisk
	}
	fmt.Printf("cleared %s: %s, %s\n", dir, human.Plural(int64(len(gone)), "file"), human.Bytes(n))
	return nil
}

// mountsUsing names the running mounts whose cache is dir, as far as their
// control sockets say.
func mountsUsing(dir string) []string {
	mounts, err := mountinfo.OfType(fuseType)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range mounts {
		if r, err := mountStatus(m); err == nil && strings.TrimSuffix(r.CacheDir, "/") == strings.TrimSuffix(dir, "/") {
			out = append(out, m.Point)
		}
	}
	return out
}
