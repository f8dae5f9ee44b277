package main

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"mastfs/cache"
	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// TestVanishedDirectory: a staged directory deleted on the server leaves
// the mount once its listing expires, and its cached chunks go with it.
func TestVanishedDirectory(t *testing.T) {
	st := ftpstest.NewStage(t, stagegen.StageOptions{ManyFiles: -1, LargeSize: 2 << 20})
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: st})
	m := startMount(t, s, "", "--remote-dir", "/anonymous", "--dir-cache-ttl", "1s")
	stageDir := filepath.Join(m.dir, "anonymous67890")
	file := filepath.Join(stageDir, "README.txt")
	if _, err := os.ReadFile(file); err != nil {
		t.Fatal(err)
	}
	cached := func() bool {
		files, err := cache.Inventory(m.cacheDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if f.Path == "/anonymous/anonymous67890/README.txt" {
				return true
			}
		}
		return false
	}
	if !cached() {
		t.Fatal("no cached chunks for the file")
	}

	if err := os.RemoveAll(st.Local(stagegen.AnonDir2)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := os.Stat(stageDir)
		if errors.Is(err, syscall.ENOENT) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleted directory still in the mount after 20s: %v", err)
		}
		// Listing the parent is what a user does, and what refreshes it.
		_, _ = os.ReadDir(m.dir)
		time.Sleep(300 * time.Millisecond)
	}
	if cached() {
		t.Error("chunks of the deleted directory still cached")
	}
	if _, err := os.Stat(filepath.Join(m.dir, "anonymous12345")); err != nil {
		t.Errorf("the other stage went too: %v", err)
	}
}
