package stagegen

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"syscall"
	"testing"
)

func TestAddScience(t *testing.T) {
	st, err := WriteStage(t.TempDir(), StageOptions{LargeSize: 2 * BlockSize, ManyFiles: -1})
	if err != nil {
		t.Fatal(err)
	}
	const dir = "anonymous/science"
	if err := st.AddScience(dir, ScienceOptions{}, 7); err != nil {
		t.Fatal(err)
	}
	if !sort.SliceIsSorted(st.Files, func(i, j int) bool { return st.Files[i].Path < st.Files[j].Path }) {
		t.Error("stage files not sorted after AddScience")
	}
	var names []string
	for _, f := range st.Children(path.Join(dir, ProductsDir)) {
		names = append(names, path.Base(f.Path))
	}
	if len(names) != DefaultProducts || !strings.HasSuffix(names[0], "_flt.fits") || !strings.HasPrefix(names[len(names)-1], "jw") {
		t.Errorf("%d products from %q to %q; want %d, HST first, JWST last", len(names), names[0], names[len(names)-1], DefaultProducts)
	}
	for i, n := range names {
		if want, _ := product(i, DefaultProducts); n != want {
			t.Fatalf("product %d is %q, want %q: listing order is not the order written", i, n, want)
		}
	}

	for _, c := range []struct {
		name     string
		min, max int64
	}{{FLTName, 165e6, 171e6}, {CalName, 115e6, 121e6}} {
		f, ok := st.Lookup(path.Join(dir, c.name))
		if !ok {
			t.Fatalf("%s not recorded", c.name)
		}
		if f.Size < c.min || f.Size > c.max || f.Size%BlockSize != 0 {
			t.Errorf("%s: %d bytes, want whole blocks in %d..%d", c.name, f.Size, c.min, c.max)
		}
		checkFile(t, st.Local(f.Path), f)
	}
	for _, f := range st.Files {
		if !strings.HasPrefix(f.Path, dir) && f.Path != "anonymous" {
			continue
		}
		fi, err := os.Stat(st.Local(f.Path))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(f.ModTime) || fi.Mode().Perm() != f.Mode.Perm() {
			t.Errorf("%s on disk: %v %v, recorded %v %v", f.Path, fi.ModTime(), fi.Mode().Perm(), f.ModTime, f.Mode.Perm())
		}
	}
	checkScienceAstropy(t, st.Local(dir))
}

// checkFile: the file is the size and digest recorded, and sparse.
func checkFile(t *testing.T, local string, f *File) {
	t.Helper()
	fd, err := os.Open(local)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	h := sha256.New()
	n, err := io.Copy(h, fd)
	if err != nil {
		t.Fatal(err)
	}
	if n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		t.Errorf("%s: %d bytes, digest %x; recorded %d, %s", f.Path, n, h.Sum(nil), f.Size, f.SHA256)
	}
	var sys syscall.Stat_t
	if err := syscall.Stat(local, &sys); err != nil {
		t.Fatal(err)
	}
	if used := sys.Blocks * 512; used > 16<<20 {
		t.Errorf("%s uses %d bytes of disk for %d: not sparse", f.Path, used, f.Size)
	}
}

// checkScienceAstropy reads the products with astropy, an independent
// reader: every unit of the big files by name, a cutout of the second
// chip's SCI against the raw bytes, and every small product verified.
func checkScienceAstropy(t *testing.T, root string) {
	haveAstropy(t, false)
	script := `
import glob, json, os, sys, warnings
import numpy as np
from astropy.io import fits
warnings.simplefilter("error")
root, flt, cal, prod = sys.argv[1:5]
out = {}
for name in (flt, cal):
    with fits.open(os.path.join(root, name), memmap=True) as h:
        h.verify("exception")
        out[name] = [[u.name, type(u).__name__, [u.header["NAXIS%d" % i] for i in range(u.header["NAXIS"], 0, -1)]] for u in h]
        h[-1].data  # the ASDF table reads
with fits.open(os.path.join(root, flt), memmap=True) as h:
    cut = np.array(h["SCI", 2].data[1000:1100, 2000:2100])
    loc = h["SCI", 2].fileinfo()["datLoc"]
    outside = np.array(h["SCI", 2].data[0:10, :])
with open(os.path.join(root, flt), "rb") as f:
    raw = []
    for r in range(1000, 1100):
        f.seek(loc + (r * 4096 + 2000) * 4)
        raw.append(np.frombuffer(f.read(400), dtype=">f4"))
out["cutout_equal"] = bool(np.array_equal(cut, np.array(raw)))
out["cutout_nonzero"] = int(np.count_nonzero(cut))
out["outside_nonzero"] = int(np.count_nonzero(outside))
n = 0
for p in sorted(glob.glob(os.path.join(root, prod, "*.fits"))):
    with fits.open(p) as h:
        h.verify("exception")
        n += len(h) == 2 and h[1].data.shape == (32, 32)
out["products"] = n
json.dump(out, sys.stdout)
`
	out, err := exec.Command(python, "-c", script, root, FLTName, CalName, ProductsDir).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("astropy: %v\n%s", err, stderr)
	}
	var got struct {
		FLT      [][]any `json:"iexn01a1q_flt.fits"`
		Cal      [][]any `json:"jw02736007001_03101_00001_nrcb1_cal.fits"`
		Equal    bool    `json:"cutout_equal"`
		Nonzero  int     `json:"cutout_nonzero"`
		Outside  int     `json:"outside_nonzero"`
		Products int     `json:"products"`
	}
	if err := json.NewDecoder(bytes.NewReader(out)).Decode(&got); err != nil {
		t.Fatalf("astropy output %q: %v", out, err)
	}
	units := func(hs [][]any) string {
		var s []string
		for _, h := range hs {
			s = append(s, h[0].(string)+":"+h[1].(string))
		}
		return strings.Join(s, " ")
	}
	if want := "PRIMARY:PrimaryHDU SCI:ImageHDU ERR:ImageHDU DQ:ImageHDU SCI:ImageHDU ERR:ImageHDU DQ:ImageHDU"; units(got.FLT) != want {
		t.Errorf("flt units %q, want %q", units(got.FLT), want)
	}
	if want := "PRIMARY:PrimaryHDU SCI:ImageHDU ERR:ImageHDU DQ:ImageHDU AREA:ImageHDU VAR_POISSON:ImageHDU " +
		"VAR_RNOISE:ImageHDU VAR_FLAT:ImageHDU ASDF:BinTableHDU"; units(got.Cal) != want {
		t.Errorf("cal units %q, want %q", units(got.Cal), want)
	}
	if len(got.FLT) == 7 {
		if shape, _ := json.Marshal(got.FLT[4][2]); string(shape) != "[2051,4096]" {
			t.Errorf("flt SCI,2 shape %s, want [2051,4096]", shape)
		}
	}
	if !got.Equal || got.Nonzero < 9000 || got.Outside != 0 {
		t.Errorf("cutout equals raw bytes %v, %d of 10000 pixels non-zero, %d outside the patch; want true, most, 0",
			got.Equal, got.Nonzero, got.Outside)
	}
	if got.Products != DefaultProducts {
		t.Errorf("astropy read %d products of 2 units, want %d", got.Products, DefaultProducts)
	}
}
