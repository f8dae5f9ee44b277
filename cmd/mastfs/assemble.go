package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/textproto"
	"os"
	"path"
	"strconv"
	"time"

	"mastfs/cache"
	"mastfs/fs"
	"mastfs/ftps"
)

// assembly is a mount put together from its flags and not yet mounted: the
// client, the cache and the file system root over them. mount, demo and
// the fstab helper all get theirs from assemble.
type assembly struct {
	cfg       ftps.Config
	remoteDir string
	client    *ftps.Client
	cache     *cache.Cache
	cacheDir  string
	opts      fs.Options
	root      *fs.Root
}

// Unstable tuning: environment overrides for benchmarks and experiments,
// in the manner of mountpoint-s3's UNSTABLE_* variables. They may change
// or go in any release, and the README says so.
const (
	// envStreamsPerFile sets cache.Config.StreamsPerFile: how many streams
	// read one sequential file at once.
	envStreamsPerFile = "MASTFS_UNSTABLE_STREAMS_PER_FILE"
)

// assemble builds a mount from m: it reads the password if one is needed,
// logs in once to tell a server that refuses us from one that cannot be
// reached, and opens the cache. Close releases what it made.
func assemble(m *mountFlags, log *slog.Logger, stdin io.Reader) (_ *assembly, err error) {
	cfg, err := m.server.config(log, stdin)
	if err != nil {
		return nil, err
	}
	ccfg, err := m.cacheConfig(cfg, log)
	if err != nil {
		return nil, err
	}
	client, err := ftps.New(cfg)
	if err != nil {
		return nil, err
	}
	s := &assembly{cfg: cfg, remoteDir: m.server.remoteDir, client: client, cacheDir: ccfg.Dir}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.reach(log); err != nil {
		return nil, err
	}
	// One pool budget: cache streams and listings ahead follow the
	// client's live connection limit, which a server's 421 shrinks.
	ccfg.Budget = client.Limit
	if s.cache, err = cache.Open(ccfg, client); err != nil {
		return nil, fmt.Errorf("open cache %s: %w", ccfg.Dir, err)
	}
	store := s.cache
	s.opts = fs.Options{
		RemoteDir: m.server.remoteDir,
		DirTTL:    m.dirTTL,
		Budget:    client.Limit,
		Logger:    log,
		UID:       uint32(os.Getuid()),
		GID:       uint32(os.Getgid()),
		// The kernel takes a backing file only from a process with
		// CAP_SYS_ADMIN: root's mounts (fstab, a shared host). Others
		// read through FUSE, as they would after a refusal.
		Passthrough: os.Geteuid() == 0,
		Statfs: func() (uint64, uint64) {
			st := store.Stats()
			free := st.Limit - st.Used
			return uint64(max(st.Limit, 0)), uint64(max(free, 0))
		},
	}
	s.root = fs.NewRoot(client, store, s.opts)
	return s, nil
}

// reach logs in once. A server that refuses us (certificate, password) is
// said so now, not as EIO on every access; one that cannot be reached is
// not a reason to refuse a mount that can serve its cache. Each step of
// the dial has its own deadline.
func (s *assembly) reach(log *slog.Logger) error {
	err := s.client.Ping(context.Background())
	switch {
	case err != nil && !ftps.IsTransient(err):
		return err
	case err != nil:
		log.Warn("server unreachable; mounting anyway, serving what the cache holds", "host", s.cfg.Host, "err", err)
		return nil
	}
	if err := s.checkRemoteDir(); err != nil {
		return err
	}
	// Log the rest of the pool in now, side by side: the first parallel
	// reads and listings then find their connections ready.
	go func() {
		wctx, cancel := context.WithTimeout(context.Background(), 3*s.cfg.Timeout)
		defer cancel()
		if err := s.client.Warm(wctx, s.cfg.MaxConns); err != nil {
			log.Debug("warming the connection pool", "err", err)
		}
	}()
	return nil
}

// drainBound is how long an unmount waits for chunks already arriving.
const drainBound = 2 * time.Second

// drain lets the chunks in flight finish, once the kernel has let the
// mount go, so a read answered before its chunk was whole does not fetch
// the chunk again after a remount.
func (s *assembly) drain(log *slog.Logger) {
	finished, dropped := s.cache.Drain(drainBound)
	log.Info(fmt.Sprintf("kept %d chunks in flight, dropped %d", finished, dropped),
		"kept", finished, "dropped", dropped)
}

// Close closes the cache and the client.
func (s *assembly) Close() {
	if s.cache != nil {
		s.cache.Close()
	}
	s.client.Close()
}

// unstableInt reads an unstable tuning variable: 0 when unset, and an
// error naming it when it is not a number.
func unstableInt(name string, log *slog.Logger) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, usageError{fmt.Sprintf("%s=%q: want a whole number", name, v)}
	}
	log.Warn("unstable tuning in effect", "var", name, "value", n)
	return n, nil
}

// checkRemoteDir fails the mount when the server says the remote
// directory does not exist: a mistyped stage name would otherwise mount
// an empty folder that says "No such file or directory". A listing that
// fails otherwise (refused, timed out) is the file system's to report.
func (s *assembly) checkRemoteDir() error {
	dir := path.Clean("/" + s.remoteDir)
	if dir == "/" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*s.cfg.Timeout)
	defer cancel()
	_, err := s.client.List(ctx, dir)
	if !errors.Is(err, ftps.ErrNotFound) {
		return nil
	}
	code := ""
	if te := (*textproto.Error)(nil); errors.As(err, &te) {
		code = fmt.Sprintf(" (%d)", te.Code)
	}
	return fmt.Errorf("remote directory %s does not exist on %s%s; check --remote-dir: "+
		"anonymous stages look like /anonymous/anonymousNNNNN, as MAST's staging e-mail names them",
		dir, s.cfg.Host, code)
}
