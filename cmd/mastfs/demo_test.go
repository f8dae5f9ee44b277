package main

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mastfs/cmd/internal/mountinfo"
	"mastfs/cmd/mastfs/internal/demo"
	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// TestDemo: mastfs demo mounts a generated stage served from its own
// process, where ls, cp and astropy work; it says what to try, and Ctrl-C
// unmounts and stops it.
func TestDemo(t *testing.T) {
	requireFUSE(t)
	privateRuntime(t)
	work := t.TempDir()
	mp := filepath.Join(t.TempDir(), "mnt")
	cmd := exec.Command(binary, "demo", "--dir", work, "--large-size", "4MiB", mp)
	var out ftpstest.LogBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-done:
			case <-time.After(time.Minute):
				_ = cmd.Process.Kill()
			}
		}
		if mountinfo.Mounted(mp) {
			_ = syscall.Unmount(mp, syscall.MNT_DETACH)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !mountinfo.Mounted(mp) || !strings.Contains(out.String(), "Ctrl-C unmounts") {
		select {
		case err := <-done:
			t.Fatalf("mastfs demo exited: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo not mounted after 30s\n%s", out.String())
		}
	}
	guide := out.String()
	for _, want := range []string{"ls -l " + mp, "cp " + mp + "/", "astropy", "prefetch", "status " + mp} {
		if !strings.Contains(guide, want) {
			t.Errorf("the demo's guide lacks %q:\n%s", want, guide)
		}
	}

	stage := filepath.Join(work, "stage")
	entries, err := os.ReadDir(mp)
	if err != nil || len(entries) < 5 {
		t.Fatalf("ls of the demo: %v, %v", entries, err)
	}
	for _, f := range []string{stagegen.HSTFile, stagegen.SpaceFile, stagegen.UnicodeFile} {
		dst := filepath.Join(t.TempDir(), "copy.fits")
		sh(t, "cp", filepath.Join(mp, path.Base(f)), dst)
		want, err := os.ReadFile(filepath.Join(stage, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
			t.Errorf("cp %s: the copy differs from the stage", path.Base(f))
		}
	}
	py := `import sys
from astropy.io import fits
print(fits.getheader(sys.argv[1])["TELESCOP"])`
	if got := sh(t, "/usr/bin/python3", "-c", py, filepath.Join(mp, path.Base(stagegen.JWSTFile))); strings.TrimSpace(got) != "JWST" {
		t.Errorf("astropy read TELESCOP %q", got)
	}
	if r := statusOf(t, mp); r.Host != "127.0.0.1" || r.RemoteDir != demo.RemoteDir || r.Cache.BytesFetched == 0 {
		t.Errorf("status of the demo: %+v", r)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo exit after Ctrl-C: %v\n%s", err, out.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("demo still running a minute after Ctrl-C\n%s", out.String())
	}
	if mountinfo.Mounted(mp) {
		t.Error("still mounted after Ctrl-C")
	}
	if !strings.Contains(out.String(), "unmounted") {
		t.Errorf("the demo did not say it unmounted:\n%s", out.String())
	}
}
