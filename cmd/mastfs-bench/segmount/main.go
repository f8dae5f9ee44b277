// Command segmount mounts a stage the way "mastfs mount" does, with one
// knob the benchmarks need and mastfs mount has no flag for: how many
// streams read one sequential file at once (cache.Config.StreamsPerFile).
// It takes the subset of mastfs mount's flags that the benchmarks pass, and
// runs in the foreground until SIGTERM or SIGINT.
//
//	segmount mount --host 127.0.0.1 --port 2121 --ca-file ca.pem --cache-dir DIR \
//	    --remote-dir /anonymous/x --streams-per-file 1 MOUNTPOINT
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mastfs/cache"
	"mastfs/fs"
	"mastfs/ftps"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "segmount:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "mount" {
		args = args[1:]
	}
	fl := flag.NewFlagSet("segmount", flag.ContinueOnError)
	host := fl.String("host", "127.0.0.1", "server host")
	port := fl.Int("port", 21, "control port")
	caFile := fl.String("ca-file", "", "PEM certificates to trust")
	cacheDir := fl.String("cache-dir", "", "cache directory")
	cacheSize := fl.String("cache-size", "4GiB", "bound on cached data")
	maxConns := fl.Int("max-conns", 4, "control connections at most")
	remoteDir := fl.String("remote-dir", "/", "remote directory at the mount's root")
	logFile := fl.String("log-file", "", "log file (default stderr)")
	verbose := fl.Bool("v", false, "debug logging")
	streams := fl.Int("streams-per-file", 0, "streams reading one sequential file at once (0: the cache's default)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 1 || *cacheDir == "" {
		return errors.New("want --cache-dir and one MOUNTPOINT")
	}
	mountpoint, err := filepath.Abs(fl.Arg(0))
	if err != nil {
		return err
	}
	w := os.Stderr
	if *logFile != "" {
		if w, err = os.OpenFile(*logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			return err
		}
		defer w.Close()
	}
	lvl := slog.LevelInfo
	if *verbose {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))

	size, err := parseSize(*cacheSize)
	if err != nil {
		return fmt.Errorf("--cache-size: %w", err)
	}
	cfg := ftps.Config{Host: *host, Port: *port, TLS: ftps.Explicit, User: "anonymous",
		Password: "mastfs-bench@example.org", MaxConns: *maxConns, Timeout: 30 * time.Second, Logger: log}
	if *caFile != "" {
		if cfg.RootCAs, err = ftps.LoadCAFile(*caFile); err != nil {
			return err
		}
	}
	client, err := ftps.New(cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	store, err := cache.Open(cache.Config{Dir: *cacheDir, MaxBytes: size, Streams: *maxConns,
		StreamsPerFile: *streams, Logger: log}, client)
	if err != nil {
		return err
	}
	defer store.Close()

	opts := fs.Options{RemoteDir: *remoteDir, Logger: log, UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	srv, err := fs.Mount(mountpoint, fs.NewRoot(client, store, opts), opts,
		fs.MountOptions{Source: "segmount:" + *host + *remoteDir})
	if err != nil {
		return err
	}
	log.Info("mounted", "mountpoint", mountpoint, "streams_per_file", *streams)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		if err := srv.Unmount(); err != nil {
			_ = syscall.Unmount(mountpoint, syscall.MNT_DETACH)
		}
	}()
	srv.Wait()
	return nil
}

// parseSize reads 4GiB, 500MiB or a plain byte count.
func parseSize(s string) (int64, error) {
	for _, u := range []struct {
		suffix string
		scale  int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(rest, 10, 64)
			return n * u.scale, err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}
