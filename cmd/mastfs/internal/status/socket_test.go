package status

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSocket: a mount answers by its mount point through the runtime
// directory, even when its cache directory's path is too long for a unix
// socket; the socket is 0600; Close removes socket and link.
func TestSocket(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	cacheDir := filepath.Join(t.TempDir(), strings.Repeat("long-cache-directory-", 6))
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		t.Fatal(err)
	}
	dead, _ := linkPath("/mnt/dead")
	if err := os.Symlink(filepath.Join(t.TempDir(), "gone.sock"), dead); err != nil {
		t.Fatal(err)
	}
	mp := "/mnt/a mount"
	want := Report{Mountpoint: mp, Host: "127.0.0.1", Cache: Cache{Used: 42}}
	var asked []string
	refresh := func(_ context.Context, rel string) (Refreshed, error) {
		asked = append(asked, rel)
		if rel == "gone" {
			return Refreshed{}, errors.New("refresh gone: not found")
		}
		return Refreshed{Dirs: 2, Added: []string{"a.fits"}, Changed: []string{"b.fits"}}, nil
	}
	s, err := Serve(cacheDir, mp, Handlers{Report: func() Report { return want }, Refresh: refresh},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dangling link was kept: %v", err)
	}
	st, err := os.Stat(filepath.Join(cacheDir, SocketName))
	if err != nil || st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket: %v, %v", st.Mode(), err)
	}
	got, err := Query(mp)
	if err != nil || got.Mountpoint != mp || got.Cache.Used != 42 {
		t.Fatalf("Query = %+v, %v", got, err)
	}
	if r, err := Refresh(mp, "sub/dir"); err != nil || r.Dirs != 2 || len(r.Added) != 1 || r.Changed[0] != "b.fits" {
		t.Errorf("Refresh = %+v, %v", r, err)
	}
	if _, err := Refresh(mp, "gone"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Refresh of a failing path: %v", err)
	}
	if len(asked) != 2 || asked[0] != "sub/dir" {
		t.Errorf("the mount was asked to refresh %q", asked)
	}
	if _, err := Query("/mnt/other"); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("Query of an unknown mount point: %v, want ErrNotRegistered", err)
	}
	link, _ := linkPath(mp)
	c, err := net.Dial("unix", link)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte(`{"command":"rm -rf"}` + "\n"))
	b, _ := io.ReadAll(c)
	c.Close()
	if !strings.Contains(string(b), "unknown command") {
		t.Errorf("answer to an unknown command: %s", b)
	}
	s.Close()
	for _, p := range []string{filepath.Join(cacheDir, SocketName), link} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after Close: %v", p, err)
		}
	}
	if _, err := Query(mp); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("Query after Close: %v", err)
	}
}

// TestMetrics: the metrics page carries the report's figures.
func TestMetrics(t *testing.T) {
	r := Report{Host: "h", User: "u", RemoteDir: "/d", Mountpoint: "/m",
		Cache: Cache{BytesFetched: 1234}, Pool: Pool{Open: 3, Busy: 1, Retries: 2, TLSFallbacks: 1}}
	m, addr, err := ServeMetrics("127.0.0.1:0", func() Report { return r }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"mastfs_cache_fetched_bytes_total 1234\n",
		"mastfs_ftps_retries_total 2\n",
		"mastfs_ftps_tls_fallbacks_total 1\n",
		`mastfs_pool_connections{state="busy"} 1` + "\n",
		`mastfs_pool_connections{state="idle"} 2` + "\n",
		`mastfs_mount_info{host="h",mountpoint="/m",remote_dir="/d",user="u"} 1` + "\n",
		"go_goroutines ",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
