package fs_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"mastfs/cache"
	"mastfs/fs"
	"mastfs/ftps"
	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// A science stage served by vsftpd, mounted through the kernel over the
// real client and cache: cp -r of its products is byte-identical and fetches
// files ahead; astropy's fits.info and a cutout of the multi-extension
// files read the same through the mount as from local disk, with their
// headers walked; the server sees no per-file command, each product sent
// once, and no more connections than the pool's bound.
func TestScienceStageThroughServer(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("mount tests need root (mount(2) with /dev/fuse)")
		}
		t.Skip("mount tests need root")
	}
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import astropy.io.fits").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("astropy not importable by %s; fix: make deps", py)
		}
		t.Skipf("astropy not importable by %s (fix: make deps)", py)
	}
	const sci, products, conns = "anonymous/science", 60, 4
	st := ftpstest.NewStage(t, stagegen.StageOptions{LargeSize: 2 * stagegen.BlockSize, ManyFiles: -1})
	if err := st.AddScience(sci, stagegen.ScienceOptions{Products: products}, 1); err != nil {
		t.Fatal(err)
	}
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: st})
	client, err := ftps.New(ftps.Config{Host: s.Host, Port: s.Port, RootCAs: s.RootCAs,
		User: s.AnonUser, Password: s.AnonPassword, MaxConns: conns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := cache.Open(cache.Config{Dir: t.TempDir(), Streams: conns}, client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	opts := fs.Options{RemoteDir: "/" + sci}
	root := fs.NewRoot(client, c, opts)
	mnt := t.TempDir()
	srv, err := fs.Mount(mnt, root, opts, fs.MountOptions{Source: "mastfs-test"})
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() {
		root.Stop()
		if err := srv.Unmount(); err != nil {
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	mark := s.Mark()

	dst := t.TempDir()
	if out, err := exec.Command("cp", "-r", filepath.Join(mnt, stagegen.ProductsDir), dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -r: %v\n%s", err, out)
	}
	copied := 0
	for _, f := range st.Children(path.Join(sci, stagegen.ProductsDir)) {
		b, err := os.ReadFile(filepath.Join(dst, stagegen.ProductsDir, path.Base(f.Path)))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Fatalf("%s copied differs from the server's", f.Path)
		}
		copied++
	}
	if copied != products {
		t.Fatalf("%d products copied, want %d", copied, products)
	}
	if files, _, _ := c.PrefetchStats(); files == 0 {
		t.Error("cp -r fetched no product ahead")
	}

	script := `
import sys
import numpy as np
from astropy.io import fits
for p in sys.argv[1:3]:
    fits.info(p)
with fits.open(sys.argv[1], memmap=True) as h:
    cut = np.array(h["SCI", 2].data[1000:1100, 2000:2100])
print(cut.shape, cut.dtype, float(cut.sum()), cut.tobytes().hex()[:64])
`
	astropy := func(dir string) string {
		out, err := exec.Command(py, "-c", script, filepath.Join(dir, stagegen.FLTName), filepath.Join(dir, stagegen.CalName)).Output()
		if err != nil {
			t.Fatalf("astropy on %s: %v", dir, err)
		}
		return strings.ReplaceAll(string(out), dir, "DIR")
	}
	local, mounted := astropy(st.Local(sci)), astropy(mnt)
	if local != mounted || !strings.Contains(local, "VAR_POISSON") || !strings.Contains(local, "(100, 100)") {
		t.Fatalf("astropy through the mount:\n%s\nfrom local disk:\n%s", mounted, local)
	}
	if _, _, walks := c.PrefetchStats(); walks != 2 {
		t.Errorf("%d header walks, want one for each multi-extension file", walks)
	}

	a, err := s.Since(mark)
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range a.Commands {
		if verb, _, _ := strings.Cut(cmd, " "); verb == "SIZE" || verb == "MDTM" {
			t.Errorf("per-file command sent: %s", cmd)
		}
	}
	if a.Connects > conns {
		t.Errorf("%d control connections, want at most %d", a.Connects, conns)
	}
	sent := map[string]int{}
	for _, tr := range a.Transfers {
		sent[tr.Path]++
	}
	for _, f := range st.Children(path.Join(sci, stagegen.ProductsDir)) {
		if n := sent[s.LogPath("/"+f.Path)]; n != 1 {
			t.Errorf("%s sent %d times, want once", f.Path, n)
		}
	}
}
