package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// TestStatusAndMetrics: after reading one file of known size, mastfs status
// and the Prometheus metrics report at least that many bytes fetched and
// cached, the server and user, and the pool; a path on no mastfs mount is
// refused with a message that says so.
func TestStatusAndMetrics(t *testing.T) {
	privateRuntime(t)
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	m := startMount(t, s, "", "--remote-dir", "/"+stagegen.AnonDir, "--metrics-addr", "127.0.0.1:0")
	f, _ := s.Stage.Lookup(stagegen.LargeFile)
	if got := sha(t, filepath.Join(m.dir, "large/large.fits")); got != f.SHA256 {
		t.Fatal("read the wrong bytes")
	}

	r := statusOf(t, m.dir)
	switch {
	case r.Mountpoint != m.dir || r.Host != s.Host || r.Port != s.Port || r.User != "anonymous" ||
		r.RemoteDir != "/"+stagegen.AnonDir || r.CacheDir != m.cacheDir || r.TLS != "explicit":
		t.Errorf("status names the mount wrongly: %+v", r)
	case r.Cache.BytesFetched < f.Size || r.Cache.Used < f.Size:
		t.Errorf("read %d bytes, status says %d fetched and %d cached", f.Size, r.Cache.BytesFetched, r.Cache.Used)
	case r.Cache.Misses == 0 || r.Cache.Limit <= r.Cache.Used || r.Cache.Chunks == 0:
		t.Errorf("cache figures: %+v", r.Cache)
	case r.Pool.Open < 1 || r.Pool.Limit != 4 || r.Pool.Dials < 1 || r.Pool.TLSVersion == "":
		t.Errorf("pool figures: %+v", r.Pool)
	case r.MetricsAddr == "":
		t.Fatalf("status names no metrics address")
	case r.ReadPath != "fuse" || r.PassthroughOpens != 0:
		// The file was not cached when it was opened: no backing file yet.
		t.Errorf("read path %q after %d passthrough opens, want fuse after a cold read", r.ReadPath, r.PassthroughOpens)
	}

	human := mustRun(t, "status")
	for _, want := range []string{m.dir, "anonymous@" + s.Host, "fetched", "connections", "hit ratio", "read path    fuse\n"} {
		if !strings.Contains(human, want) {
			t.Errorf("mastfs status lacks %q:\n%s", want, human)
		}
	}
	// Read again, now wholly cached: a root mount hands the kernel the
	// cache file, unless the kernel refuses (before Linux 6.9), which the
	// log then says.
	large := filepath.Join(m.dir, "large/large.fits")
	dropPages(t, large)
	if got := sha(t, large); got != f.SHA256 {
		t.Fatal("second read: wrong bytes")
	}
	r = statusOf(t, m.dir)
	refused := strings.Contains(m.log(t), "kernel refused passthrough")
	switch {
	case os.Geteuid() != 0 && r.ReadPath != "fuse":
		t.Errorf("read path %q in a mount by uid %d, want fuse", r.ReadPath, os.Geteuid())
	case os.Geteuid() == 0 && !refused && (r.ReadPath != "passthrough" || r.PassthroughOpens < 1):
		t.Errorf("read path %q after %d passthrough opens of a wholly cached file, want passthrough", r.ReadPath, r.PassthroughOpens)
	case os.Geteuid() == 0 && !refused && !strings.Contains(mustRun(t, "status", m.dir), "read path    passthrough"):
		t.Error("mastfs status does not show the passthrough read path")
	}

	if res := runMastfs(t, "status", t.TempDir()); res.code != exitFailure || !strings.Contains(res.stderr, "not on a mastfs mount") {
		t.Errorf("status of a plain directory: exit %d, %q", res.code, res.stderr)
	}

	metrics := scrape(t, "http://"+r.MetricsAddr+"/metrics")
	for name, atLeast := range map[string]float64{
		"mastfs_cache_fetched_bytes_total": float64(f.Size),
		"mastfs_cache_used_bytes":          float64(f.Size),
		"mastfs_cache_misses_total":        1,
		"mastfs_ftps_dials_total":          1,
		"mastfs_ftps_retries_total":        0,
		"mastfs_ftps_tls_fallbacks_total":  0,
		"mastfs_pool_limit":                4,
	} {
		v, ok := metrics[name]
		if !ok || v < atLeast {
			t.Errorf("metric %s = %v (present %v), want at least %v", name, v, ok, atLeast)
		}
	}
	info := `mastfs_mount_info{host="127.0.0.1",mountpoint="` + m.dir + `",remote_dir="/` + stagegen.AnonDir + `",user="anonymous"}`
	if metrics[info] != 1 {
		t.Errorf("no %s 1 among the metrics", info)
	}
}

// scrape reads a Prometheus text page into name{labels} -> value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
