package main

import (
	"path"
	"path/filepath"
	"slices"
	"strings"
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
