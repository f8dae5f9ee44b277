package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
		64 << 20: "64.0 MiB", 10 << 30: "10.0 GiB", 3 << 40: "3.0 TiB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		0: "0s", 1499 * time.Millisecond: "1s", 59 * time.Second: "59s", 192 * time.Second: "3m12s",
		2*time.Hour + 5*time.Minute + 20*time.Second: "2h05m", -time.Second: "?",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestRenderBar(t *testing.T) {
	for _, tc := range []struct {
		done, total int64
		rate        float64
		width       int
		want        string
	}{
		{0, 100 << 20, 0, 100, "[>" + strings.Repeat(" ", 35) + "]   0% 0 B / 100.0 MiB  0 B/s  ETA --  0/4 files"},
		{50 << 20, 100 << 20, 10 << 20, 100, "[" + strings.Repeat("=", 18) + ">" + strings.Repeat(" ", 17) + "]  50% 50.0 MiB / 100.0 MiB  10.0 MiB/s  ETA 5s  2/4 files"},
		{100 << 20, 100 << 20, 10 << 20, 100, "[" + strings.Repeat("=", 36) + "] 100% 100.0 MiB / 100.0 MiB  10.0 MiB/s  ETA 0s  4/4 files"},
		{50 << 20, 100 << 20, 10 << 20, 40, " 50% 50.0 MiB / 100.0 MiB  10.0 MiB/s  ETA 5s  2/4 files"},
	} {
		files := int(4 * tc.done / tc.total)
		got := renderBar(tc.done, tc.total, tc.rate, files, 4, tc.width)
		if got != tc.want {
			t.Errorf("renderBar(%d/%d, width %d):\n got %q\nwant %q", tc.done, tc.total, tc.width, got, tc.want)
		}
		if len(got) >= max(tc.width, len(tc.want)+1) {
			t.Errorf("bar of %d columns for a width of %d", len(got), tc.width)
		}
	}
}

func TestMountHelperArgs(t *testing.T) {
	for args, want := range map[string]bool{
		"archive.stsci.edu/anonymous/a1 /mnt/mast -o rw,dev": true,
		"mastfs /mnt/mast -o user=x":                         true,
		"127.0.0.1:2121 /mnt/mast":                           true,
		"mout /mnt/mast":                                     false,
		"--help":                                             false,
	} {
		if got := isMountHelperCall(strings.Fields(args)); got != want {
			t.Errorf("isMountHelperCall(%s) = %v", args, got)
		}
	}
	// What mount.fuse3 passes for an fstab line with _netdev and
	// x-systemd.automount: mount(8) keeps those to itself, and adds rw, dev, suid.
	got, err := helperFlags("archive.stsci.edu/anonymous/a1", strings.Split(
		"rw,cache_dir=/var/cache/mastfs,allow_other,user=me@example.org,password_file=/etc/mastfs.pw,_netdev,x-systemd.automount,nofail,exec,suid,dev", ","))
	want := []string{"--host", "archive.stsci.edu/anonymous/a1", "--cache-dir", "/var/cache/mastfs", "--allow-other",
		"--user", "me@example.org", "--password-file", "/etc/mastfs.pw"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("helperFlags = %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"cache_dir", "allow_other=1", "colour=blue"} {
		if _, err := helperFlags("x", []string{bad}); err == nil {
			t.Errorf("option %q accepted", bad)
		}
	}
}
