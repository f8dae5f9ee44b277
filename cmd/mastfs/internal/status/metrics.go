package status

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metric describes one figure of a report as a Prometheus metric.
type metric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(r *Report) float64
}

// collector turns a mount's report into Prometheus metrics at each scrape,
// so the figures are the ones "mastfs status" shows.
type collector struct {
	report  func() Report
	info    *prometheus.Desc
	conns   *prometheus.Desc
	metrics []metric
}

func newCollector(report func() Report) *collector {
	gauge := func(name, help string, v func(r *Report) float64) metric {
		return metric{prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, v}
	}
	counter := func(name, help string, v func(r *Report) float64) metric {
		return metric{prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue, v}
	}
	return &collector{
		report: report,
		info: prometheus.NewDesc("mastfs_mount_info", "The mount: server, user, remote directory and mount point.",
			[]string{"host", "user", "remote_dir", "mountpoint"}, nil),
		conns: prometheus.NewDesc("mastfs_pool_connections", "Control connections to the server, by state.",
			[]string{"state"}, nil),
		metrics: []metric{
			gauge("mastfs_cache_used_bytes", "Bytes of chunk files in the cache.",
				func(r *Report) float64 { return float64(r.Cache.Used) }),
			gauge("mastfs_cache_limit_bytes", "Bound on the cache's bytes (--cache-size, clamped to the disk).",
				func(r *Report) float64 { return float64(r.Cache.Limit) }),
			gauge("mastfs_cache_chunks", "Chunks in the cache.",
				func(r *Report) float64 { return float64(r.Cache.Chunks) }),
			counter("mastfs_cache_hits_total", "Chunk reads served from the cache.",
				func(r *Report) float64 { return float64(r.Cache.Hits) }),
			counter("mastfs_cache_misses_total", "Chunk reads that waited for the server.",
				func(r *Report) float64 { return float64(r.Cache.Misses) }),
			counter("mastfs_cache_fetched_bytes_total", "Bytes fetched from the server into the cache.",
				func(r *Report) float64 { return float64(r.Cache.BytesFetched) }),
			gauge("mastfs_cache_fetches_in_flight", "Transfers from the server open now.",
				func(r *Report) float64 { return float64(r.Cache.FetchesInFlight) }),
			counter("mastfs_cache_write_errors_total", "Chunks served uncached because the disk refused them.",
				func(r *Report) float64 { return float64(r.Cache.WriteErrors) }),
			gauge("mastfs_pool_limit", "Control connections allowed now (lowered when the server says too many).",
				func(r *Report) float64 { return float64(r.Pool.Limit) }),
			counter("mastfs_ftps_dials_total", "Control connections opened.",
				func(r *Report) float64 { return float64(r.Pool.Dials) }),
			counter("mastfs_ftps_data_connections_total", "Data connections opened.",
				func(r *Report) float64 { return float64(r.Pool.DataConns) }),
			counter("mastfs_ftps_discarded_total", "Connections dropped after an error.",
				func(r *Report) float64 { return float64(r.Pool.Discarded) }),
			counter("mastfs_ftps_retries_total", "Operations retried after a transient failure.",
				func(r *Report) float64 { return float64(r.Pool.Retries) }),
			counter("mastfs_ftps_tls_fallbacks_total", "Falls back to TLS 1.2 for data connections the server refused under TLS 1.3.",
				func(r *Report) float64 { return float64(r.Pool.TLSFallbacks) }),
			counter("mastfs_ftps_received_bytes_total", "Bytes received on data connections, listings included.",
				func(r *Report) float64 { return float64(r.Pool.BytesRead) }),
			gauge("mastfs_ftps_transfers_in_flight", "File transfers open on the server now.",
				func(r *Report) float64 { return float64(r.Pool.Transfers) }),
		},
	}
}

// Describe sends every metric's description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.info
	ch <- c.conns
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

// Collect reads the mount's status once and sends every metric.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	r := c.report()
	ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, r.Host, r.User, r.RemoteDir, r.Mountpoint)
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(r.Pool.Busy), "busy")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(r.Pool.Open-r.Pool.Busy), "idle")
	for _, m := range c.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(&r))
	}
}

// Metrics serves /metrics over HTTP.
type Metrics struct {
	srv  *http.Server
	done chan struct{}
}

// ServeMetrics listens on addr and serves the figures of report, with the
// Go runtime's and the process's, as Prometheus metrics until Close.
func ServeMetrics(addr string, report func() Report, log *slog.Logger) (*Metrics, net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-addr %s: %w (choose another address, or leave --metrics-addr out)", addr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(report), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "mastfs: metrics are at /metrics")
	})
	m := &Metrics{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		log.Warn("metrics are served beyond this machine: whoever reaches them sees the server, user and mount point",
			"addr", ln.Addr().String())
	}
	return m, ln.Addr(), nil
}

// Close stops serving.
func (m *Metrics) Close() {
	m.srv.Close()
	<-m.done
}
