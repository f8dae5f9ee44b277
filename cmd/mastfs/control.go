package main

import (
	"context"
	"crypto/tls"
	"os"
	"time"

	"mastfs/cache"
	"mastfs/cmd/mastfs/internal/status"
	"mastfs/fs"
	"mastfs/ftps"
)

// mountState is what a running mount reports about itself.
type mountState struct {
	started     time.Time
	mountpoint  string // as the kernel's mount table shows it
	cfg         ftps.Config
	remoteDir   string
	cacheDir    string // absolute
	metricsAddr string // where metrics are served, once listening
	cache       *cache.Cache
	client      *ftps.Client
	root        *fs.Root
}

// refresh drops the mount's listings under rel, for mastfs refresh.
func (s *mountState) refresh(ctx context.Context, rel string) (status.Refreshed, error) {
	r, err := s.root.Refresh(ctx, rel)
	if err != nil {
		return status.Refreshed{}, err
	}
	return status.Refreshed{Dirs: r.Dirs, Added: r.Added, Removed: r.Removed, Changed: r.Changed}, nil
}

// report gathers the mount's figures for mastfs status and the metrics.
func (s *mountState) report() status.Report {
	cs, ps := s.cache.Stats(), s.client.Stats()
	port := s.cfg.Port
	if port == 0 {
		port = 21
		if s.cfg.TLS == ftps.Implicit {
			port = 990
		}
	}
	r := status.Report{
		Mountpoint: s.mountpoint, PID: os.Getpid(), Started: s.started,
		Host: s.cfg.Host, Port: port, TLS: s.cfg.TLS.String(), User: s.cfg.User,
		RemoteDir: s.remoteDir, CacheDir: s.cacheDir, MetricsAddr: s.metricsAddr,
		ReadPath: s.root.ReadPath(), PassthroughOpens: s.root.PassthroughOpens(),
		Cache: status.Cache{Used: cs.Used, Limit: cs.Limit, Chunks: cs.Chunks, Hits: cs.Hits, Misses: cs.Misses,
			BytesFetched: cs.BytesFetched, FetchesInFlight: cs.FetchesInFlight,
			StreamsOpened: cs.StreamsOpened, WriteErrors: cs.WriteErrors},
		Pool: status.Pool{Open: ps.Open, Busy: ps.Busy, Limit: ps.Limit, Dials: ps.Dials, DataConns: ps.DataConns,
			Discarded: ps.Discarded, Retries: ps.Retries, TLSFallbacks: ps.TLSFallbacks,
			Transfers: ps.Streams, BytesRead: ps.BytesRead},
	}
	if n := cs.Hits + cs.Misses; n > 0 {
		r.Cache.HitRatio = float64(cs.Hits) / float64(n)
	}
	if ps.TLSVersion != 0 {
		r.Pool.TLSVersion = tls.VersionName(ps.TLSVersion)
	}
	return r
}
