// Package status carries the figures of a running mount to the commands
// that show them: a unix socket in the mount's cache directory answers
// "mastfs status" (and "mastfs prefetch"), found by the mount point through
// a per-user runtime directory, and Prometheus metrics serve the same
// figures over HTTP.
package status

import "time"

// Report is what a mount says about itself, as JSON.
type Report struct {
	Mountpoint  string    `json:"mountpoint"`
	PID         int       `json:"pid"`
	Started     time.Time `json:"started"`
	Host        string    `json:"host"`
	Port        int       `json:"port"`
	TLS         string    `json:"tls"` // explicit, implicit or plaintext
	User        string    `json:"user"`
	RemoteDir   string    `json:"remote_dir"`
	CacheDir    string    `json:"cache_dir"`
	MetricsAddr string    `json:"metrics_addr,omitempty"`
	// ReadPath is how wholly cached files are read: "passthrough" once the
	// kernel has taken a cache file as backing file, else "fuse".
	ReadPath         string `json:"read_path"`
	PassthroughOpens int64  `json:"passthrough_opens"`
	Cache            Cache  `json:"cache"`
	Pool             Pool   `json:"pool"`
	Error            string `json:"error,omitempty"` // set instead of the figures when a request fails
}

// Cache are the chunk cache's figures.
type Cache struct {
	Used            int64   `json:"used_bytes"`
	Limit           int64   `json:"limit_bytes"`
	Chunks          int     `json:"chunks"`
	Hits            int64   `json:"hits"`
	Misses          int64   `json:"misses"`
	HitRatio        float64 `json:"hit_ratio"` // of chunk reads; 0 before any read
	BytesFetched    int64   `json:"fetched_bytes"`
	FetchesInFlight int     `json:"fetches_in_flight"`
	StreamsOpened   int64   `json:"streams_opened"`
	WriteErrors     int64   `json:"write_errors"`
}

// Pool are the FTPS client's figures.
type Pool struct {
	Open         int    `json:"open"`
	Busy         int    `json:"busy"`
	Limit        int    `json:"limit"`
	Dials        int64  `json:"dials"`
	DataConns    int64  `json:"data_connections"`
	Discarded    int64  `json:"discarded"`
	Retries      int64  `json:"retries"`
	TLSFallbacks int64  `json:"tls_fallbacks"`
	Transfers    int64  `json:"transfers_in_flight"`
	BytesRead    int64  `json:"received_bytes"`
	TLSVersion   string `json:"tls_version,omitempty"`
}

// Refreshed is what a refresh changed: names relative to the mount's root.
type Refreshed struct {
	Dirs    int      `json:"dirs"` // listings dropped
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Changed []string `json:"changed,omitempty"` // size or time differs
	Error   string   `json:"error,omitempty"`
}
