package main

import (
	"log/slog"
	"path/filepath"

	"mastfs/cmd/mastfs/internal/status"
)

// mountExtras is what a mount serves beside the file system: the control
// socket of "mastfs status", and metrics when --metrics-addr asks for them.
type mountExtras struct {
	control *status.Server
	metrics *status.Metrics
}

// startExtras starts them. Metrics that cannot listen stop the mount (the
// user asked for them); a control socket that cannot be made only costs
// "mastfs status", so it is logged.
func startExtras(st *mountState, metricsAddr string, log *slog.Logger) (*mountExtras, error) {
	if mp, err := filepath.EvalSymlinks(st.mountpoint); err == nil {
		st.mountpoint = mp // the kernel's mount table names the resolved path
	}
	if dir, err := filepath.Abs(st.cacheDir); err == nil {
		st.cacheDir = dir
	}
	x := &mountExtras{}
	if metricsAddr != "" {
		m, addr, err := status.ServeMetrics(metricsAddr, st.report, log)
		if err != nil {
			return nil, err
		}
		x.metrics, st.metricsAddr = m, addr.String()
	}
	c, err := status.Serve(st.cacheDir, st.mountpoint, status.Handlers{Report: st.report, Refresh: st.refresh}, log)
	if err != nil {
		log.Warn("no control socket: mastfs status and prefetch will not see this mount", "err", err)
	}
	x.control = c
	return x, nil
}

// Close stops both.
func (x *mountExtras) Close() {
	if x.control != nil {
		x.control.Close()
	}
	if x.metrics != nil {
		x.metrics.Close()
	}
}
