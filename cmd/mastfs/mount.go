package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"mastfs/cache"
	"mastfs/cmd/mastfs/internal/daemon"
	"mastfs/cmd/mastfs/internal/sdnotify"
	"mastfs/fs"
	"mastfs/ftps"
)

const mountExamples = `  mastfs mount /mnt/mast                                   anonymous, the whole server
  mastfs mount --remote-dir /anonymous/anonymous12345 ~/stage
  mastfs mount --user me@example.org --remote-dir /me@example.org/stage42 ~/stage   (asks for the password)
  echo "$PW" | mastfs mount --user me@example.org --password-stdin --daemon ~/stage
  mastfs unmount ~/stage
`

type mountFlags struct {
	server     serverFlags
	logs       logFlags
	cacheDir   string
	cacheSize  string
	chunkSize  string
	dirTTL     time.Duration
	daemon     bool
	allowOther bool
	debugFUSE  bool
	// metricsAddr, when set, serves Prometheus metrics there (internal/status).
	metricsAddr string
}

func cmdMount(args []string) error {
	var m mountFlags
	fset := flag.NewFlagSet("mount", flag.ContinueOnError)
	m.server.register(fset)
	m.logs.register(fset)
	fset.StringVar(&m.cacheDir, "cache-dir", "", "cache `directory` (default $XDG_CACHE_HOME/mastfs/HOST/USER)")
	fset.StringVar(&m.cacheSize, "cache-size", "10GiB", "bound on cached data (`size`, e.g. 500MiB, 20GiB); never more than the disk has free")
	fset.StringVar(&m.chunkSize, "chunk-size", "", "cache chunk `size` (default chosen by measurement)")
	fset.DurationVar(&m.dirTTL, "dir-cache-ttl", 5*time.Minute, "how long a directory listing is trusted")
	fset.BoolVar(&m.daemon, "daemon", false, "detach once the mount is ready; the exit status says whether it mounted")
	fset.BoolVar(&m.allowOther, "allow-other", false, "let other local users read the mount (they can then read exclusive-access data)")
	fset.BoolVar(&m.debugFUSE, "debug-fuse", false, "log every FUSE request")
	fset.StringVar(&m.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://`host:port`/metrics, e.g. 127.0.0.1:9464")
	if err := parse(fset, args, mountExamples); err != nil {
		return err
	}
	if fset.NArg() != 1 {
		return usageError{"want exactly one MOUNTPOINT (see mastfs mount --help)"}
	}
	mountpoint, err := filepath.Abs(fset.Arg(0))
	if err != nil {
		return err
	}
	log, closeLog, err := m.logs.logger()
	if err != nil {
		return err
	}
	defer closeLog.Close()

	if m.daemon && !daemon.IsChild() {
		return background(&m, args, log)
	}
	pipe := daemon.ReadyPipe() // nil unless we are the detached child
	var ready func()
	if pipe != nil {
		ready = pipe.Mounted
	}
	err = serve(&m, mountpoint, log, os.Stdin, ready)
	if err != nil && pipe != nil {
		pipe.Failed(err)
	}
	return err
}

// stopAfter is how long after the unmount signal requests still in flight
// are ended.
const stopAfter = 2 * time.Second

// serve mounts at mountpoint what assemble builds from m, calls ready once
// the kernel has the mount, and returns when it is unmounted.
func serve(m *mountFlags, mountpoint string, log *slog.Logger, stdin io.Reader, ready func()) error {
	if err := clearStale(mountpoint, log); err != nil {
		return err
	}
	if st, err := os.Stat(mountpoint); err != nil {
		return fmt.Errorf("mount point: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("mount point %s is not a directory", mountpoint)
	}
	a, err := assemble(m, log, stdin)
	if err != nil {
		return err
	}
	defer a.Close()

	if m.allowOther {
		log.Warn("--allow-other: every local user can read this mount, exclusive-access data included")
	}
	extras, err := startExtras(&mountState{started: time.Now(), mountpoint: mountpoint, cfg: a.cfg,
		remoteDir: a.remoteDir, cacheDir: a.cacheDir, cache: a.cache, client: a.client, root: a.root},
		m.metricsAddr, log)
	if err != nil {
		return err
	}
	defer extras.Close()
	// Signals from now on unmount: one that comes while the kernel takes
	// the mount waits in sigs, rather than killing a process whose mount
	// a test or a unit already sees.
	// They stay caught until the process exits: a second SIGTERM while
	// the cache drains must not kill it.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	srv, err := fs.Mount(mountpoint, a.root, a.opts, fs.MountOptions{
		AllowOther: m.allowOther, Debug: m.debugFUSE,
		Source: "mastfs:" + a.cfg.User + "@" + a.cfg.Host + a.remoteDir,
	})
	if err != nil {
		return mountHint(err)
	}
	unmounted := make(chan struct{})
	go func() {
		first := true
		for sig := range sigs {
			if !first {
				log.Info("already unmounting", "signal", sig.String())
				continue
			}
			first = false
			log.Info("unmounting", "signal", sig.String())
			notify(log, sdnotify.Stopping)
			// Requests still waiting on the server end if the kernel has
			// not let go by then, so that the process does not outlive the
			// mount by a network timeout.
			go func() {
				select {
				case <-time.After(stopAfter):
					a.root.Stop()
				case <-unmounted:
				}
			}()
			if err := srv.Unmount(); err != nil {
				log.Warn("unmount failed; detaching lazily", "err", err)
				_ = detach(mountpoint, true)
			}
		}
	}()
	log.Info("mounted", "mountpoint", mountpoint, "host", a.cfg.Host, "user", a.cfg.User,
		"remote_dir", a.remoteDir, "cache", a.cacheDir)
	if ready != nil {
		ready()
	}
	// A detached child has no $NOTIFY_SOCKET: its parent tells systemd.
	notify(log, sdnotify.Ready+"\nSTATUS=mounted "+a.cfg.Host+a.remoteDir+" at "+mountpoint)

	srv.Wait()
	close(unmounted)
	a.drain(log) // the chunks on their way finish before requests are ended
	a.root.Stop()
	log.Info("unmounted", "mountpoint", mountpoint)
	return nil
}

func (m *mountFlags) cacheConfig(cfg ftps.Config, log *slog.Logger) (cache.Config, error) {
	size, err := parseSize(m.cacheSize)
	if err != nil {
		return cache.Config{}, usageError{"--cache-size: " + err.Error()}
	}
	var chunk int64
	if m.chunkSize != "" {
		if chunk, err = parseSize(m.chunkSize); err != nil {
			return cache.Config{}, usageError{"--chunk-size: " + err.Error()}
		}
	}
	dir := m.cacheDir
	if dir == "" {
		if dir, err = defaultCacheDir(cfg.Host, cfg.User); err != nil {
			return cache.Config{}, err
		}
	}
	perFile, err := unstableInt(envStreamsPerFile, log)
	if err != nil {
		return cache.Config{}, err
	}
	return cache.Config{Dir: dir, MaxBytes: size, ChunkSize: chunk, Streams: cfg.MaxConns,
		StreamsPerFile: perFile, Logger: log}, nil
}

// defaultCacheDir is where a mount of host as user keeps its cache when no
// --cache-dir is given: $XDG_CACHE_HOME/mastfs/HOST/USER.
func defaultCacheDir(host, user string) (string, error) {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no --cache-dir and no home directory: %w", err)
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "mastfs", safeName(host), safeName(user)), nil
}

// safeName keeps a host or user name usable as one path element.
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '/' || r == 0 || r == '\\' {
			return '_'
		}
		return r
	}, s)
	if s == "" || s == "." || s == ".." {
		return "_"
	}
	return s
}

// clearStale detaches a mount left by a process that died ("transport
// endpoint is not connected"), so the new mount can take its place.
func clearStale(mountpoint string, log *slog.Logger) error {
	_, err := os.Stat(mountpoint)
	if !errors.Is(err, syscall.ENOTCONN) {
		return nil
	}
	log.Warn("mount point is a stale mount left by a dead process; detaching it", "mountpoint", mountpoint)
	if err := detach(mountpoint, true); err != nil {
		return fmt.Errorf("%s is a stale mount (transport endpoint is not connected) and detaching it failed: %w; "+
			"clear it with: fusermount3 -uz %s (or, as root, umount -l %s)", mountpoint, err, mountpoint, mountpoint)
	}
	return nil
}

func cmdUnmount(args []string) error {
	fset := flag.NewFlagSet("unmount", flag.ContinueOnError)
	lazy := fset.Bool("lazy", false, "detach now even if files are open; the mount goes when they close")
	if err := parse(fset, args, "  mastfs unmount /mnt/mast\n"); err != nil {
		return err
	}
	if fset.NArg() != 1 {
		return usageError{"want exactly one MOUNTPOINT"}
	}
	mp, err := filepath.Abs(fset.Arg(0))
	if err != nil {
		return err
	}
	if err := detach(mp, *lazy); err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("unmount %s: busy (a process has a file open or its cwd there); close it, or use --lazy", mp)
		}
		return fmt.Errorf("unmount %s: %w", mp, err)
	}
	return nil
}
