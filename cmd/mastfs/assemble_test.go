package main

import (
	"errors"
	"log/slog"
	"testing"

	"mastfs/ftps"
)

// TestUnstableStreamsPerFile: MASTFS_UNSTABLE_STREAMS_PER_FILE reaches the
// cache's configuration, unset means the cache's default, and a value that
// is not a number is a usage error naming the variable.
func TestUnstableStreamsPerFile(t *testing.T) {
	m := mountFlags{cacheDir: t.TempDir(), cacheSize: "1GiB"}
	cfg := ftps.Config{Host: "h", User: "anonymous", MaxConns: 4}
	log := slog.New(slog.DiscardHandler)
	for v, want := range map[string]int{"": 0, "1": 1, "3": 3} {
		t.Setenv(envStreamsPerFile, v)
		c, err := m.cacheConfig(cfg, log)
		if err != nil || c.StreamsPerFile != want || c.Streams != 4 {
			t.Errorf("%s=%q: StreamsPerFile %d, Streams %d, %v; want %d", envStreamsPerFile, v, c.StreamsPerFile, c.Streams, err, want)
		}
	}
	for _, bad := range []string{"one", "-1"} {
		t.Setenv(envStreamsPerFile, bad)
		var ue usageError
		if _, err := m.cacheConfig(cfg, log); !errors.As(err, &ue) {
			t.Errorf("%s=%q: %v, want a usage error", envStreamsPerFile, bad, err)
		}
	}
}
