package fstab

import (
	"slices"
	"strings"
	"testing"
)

func TestMountHelperArgs(t *testing.T) {
	for args, want := range map[string]bool{
		"archive.stsci.edu/anonymous/a1 /mnt/mast -o rw,dev": true,
		"mastfs /mnt/mast -o user=x":                         true,
		"127.0.0.1:2121 /mnt/mast":                           true,
		"mout /mnt/mast":                                     false,
		"--help":                                             false,
	} {
		if got := IsHelperCall(strings.Fields(args)); got != want {
			t.Errorf("IsHelperCall(%s) = %v", args, got)
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
	if got, err := MountArgs([]string{"h/d", "/mnt/x", "-o", "ro,max_conns=2"}); err != nil ||
		!slices.Equal(got, []string{"--host", "h/d", "--max-conns", "2", "--daemon", "/mnt/x"}) {
		t.Errorf("MountArgs = %q, %v", got, err)
	}
	for _, bad := range [][]string{{"h", "/m", "-o"}, {"h", "/m", "--what"}} {
		if _, err := MountArgs(bad); err == nil {
			t.Errorf("MountArgs(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"cache_dir", "allow_other=1", "colour=blue"} {
		if _, err := helperFlags("x", []string{bad}); err == nil {
			t.Errorf("option %q accepted", bad)
		}
	}
}
