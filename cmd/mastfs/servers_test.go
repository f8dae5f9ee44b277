package main

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// TestMountOtherServers: through the kernel, `ls -lR` and a copy of a
// directory of many files work on the servers beyond vsftpd and pure-ftpd:
// ProFTPD (TLS 1.3, and with MLSD refused) and pyftpdlib, whose quirks the
// client must live with (a refused MLSD, data connections made ahead that
// it drops). Every byte is the server's, and no stream breaks.
func TestMountOtherServers(t *testing.T) {
	requireFUSE(t)
	var kinds []ftpstest.Kind
	for _, k := range ftpstest.Kinds() {
		if slices.Contains([]string{"proftpd-tls13", "proftpd-mlsd-refused", "pyftpdlib"}, k.Name) {
			kinds = append(kinds, k)
		}
	}
	st := ftpstest.NewStage(t, stagegen.StageOptions{ManyFiles: 200, LargeSize: 4 << 20})
	for _, s := range ftpstest.StartKinds(t, st, ftpstest.Options{}, kinds) {
		t.Run(s.Name, func(t *testing.T) {
			m := startMount(t, s, "", "--remote-dir", "/anonymous")
			got := walkMount(t, m.dir)
			want := 0
			for _, f := range st.Files {
				if strings.HasPrefix(f.Path, "anonymous/") && f.Access == stagegen.Public {
					want++
				}
			}
			if len(got) != want {
				t.Errorf("ls -lR shows %d entries, the server has %d public ones", len(got), want)
			}
			many := st.Children(stagegen.ManyDir)
			if len(many) == 0 {
				t.Fatal("the stage has no many-file directory")
			}
			for _, f := range many {
				local := filepath.Join(m.dir, strings.TrimPrefix(f.Path, "anonymous/"))
				if sum := sha(t, local); sum != f.SHA256 {
					t.Errorf("%s: sha256 %s through the mount, %s on the server", path.Base(f.Path), sum, f.SHA256)
				}
			}
			if log := m.log(t); strings.Contains(log, "remote stream broke") {
				t.Errorf("a stream broke:\n%s", lastLogLines(log, 30))
			}
		})
	}
}

// TestMountTraverseOnlyParents: with the stage's parents traverse-only
// (mode 711: enter, not read), a mount of the server's root still reaches
// a stage by its path, as MAST's per-user visibility needs, on vsftpd and
// on ProFTPD; a stage that does not exist is ENOENT.
func TestMountTraverseOnlyParents(t *testing.T) {
	requireFUSE(t)
	var kinds []ftpstest.Kind
	for _, k := range ftpstest.Kinds() {
		if k.Name == "vsftpd-explicit" || k.Name == "proftpd-tls13" {
			kinds = append(kinds, k)
		}
	}
	st := ftpstest.NewStage(t, stagegen.StageOptions{ManyFiles: -1, LargeSize: 1 << 20})
	for _, s := range ftpstest.StartKinds(t, st, ftpstest.Options{TraverseOnly: true}, kinds) {
		t.Run(s.Name, func(t *testing.T) {
			m := startMount(t, s, "")
			top, _ := os.ReadDir(m.dir)
			if slices.ContainsFunc(top, func(e os.DirEntry) bool { return e.Name() == "anonymous" }) {
				t.Fatal("the root lists anonymous: the parents are not traverse-only here")
			}
			stageDir := filepath.Join(m.dir, stagegen.AnonDir)
			ents, err := os.ReadDir(stageDir)
			if err != nil {
				t.Fatalf("ls %s: %v\n%s", stageDir, err, lastLogLines(m.log(t), 20))
			}
			hst := path.Base(stagegen.HSTFile)
			if !slices.ContainsFunc(ents, func(e os.DirEntry) bool { return e.Name() == hst }) {
				t.Errorf("ls %s: %d entries, no %s", stageDir, len(ents), hst)
			}
			f, _ := st.Lookup(stagegen.HSTFile)
			if got := sha(t, filepath.Join(stageDir, hst)); got != f.SHA256 {
				t.Errorf("%s read through a traverse-only parent differs", hst)
			}
			missing := filepath.Join(filepath.Dir(stageDir), "anonymous00000")
			if _, err := os.Stat(missing); !errors.Is(err, syscall.ENOENT) {
				t.Errorf("stat %s: %v, want ENOENT", missing, err)
			}
		})
	}
}
