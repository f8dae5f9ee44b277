package ftpstest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"mastfs/ftps/stagegen"
)

func TestCard(t *testing.T) {
	for _, tc := range []struct {
		card stagegen.Card
		want string
	}{
		{stagegen.Card{Key: "SIMPLE", Value: true}, "SIMPLE  =                    T"},
		{stagegen.Card{Key: "BITPIX", Value: -32}, "BITPIX  =                  -32"},
		{stagegen.Card{Key: "NAXIS1", Value: int64(1440), Comment: "width"}, "NAXIS1  =                 1440 / width"},
		{stagegen.Card{Key: "EXPTIME", Value: 1200.5}, "EXPTIME =               1200.5"},
		{stagegen.Card{Key: "EXPTIME", Value: 3.0}, "EXPTIME =                  3.0"},
		{stagegen.Card{Key: "TELESCOP", Value: "HST"}, "TELESCOP= 'HST     '"},
		{stagegen.Card{Key: "OBJECT", Value: "it's"}, "OBJECT  = 'it''s   '"},
		{stagegen.Card{Key: "COMMENT", Comment: "free text"}, "COMMENT free text"},
	} {
		got := tc.card.String()
		if len(got) != 80 || strings.TrimRight(got, " ") != tc.want {
			t.Errorf("%+v: got %q, want %q padded to 80", tc.card, got, tc.want)
		}
	}
	h := stagegen.FITSHeader(stagegen.Card{Key: "SIMPLE", Value: true})
	if len(h) != stagegen.BlockSize || !bytes.HasPrefix(h[80:], []byte("END     ")) {
		t.Errorf("FITSHeader: %d bytes, END card %q", len(h), h[80:88])
	}
}

func TestWriteStage(t *testing.T) {
	now := time.Date(2026, 5, 17, 14, 31, 0, 0, time.UTC)
	opts := stagegen.StageOptions{LargeSize: 1 << 20, ManyFiles: 25, Now: now}
	a, err := stagegen.WriteStage(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := stagegen.WriteStage(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Files) != len(b.Files) {
		t.Fatalf("%d entries, then %d", len(a.Files), len(b.Files))
	}
	for i, f := range a.Files {
		g := b.Files[i]
		if f.Path != g.Path || f.Size != g.Size || f.SHA256 != g.SHA256 || !f.ModTime.Equal(g.ModTime) {
			t.Errorf("not deterministic: %+v vs %+v", f, g)
		}
	}
	for _, f := range a.Files {
		st, err := os.Lstat(a.Local(f.Path))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != f.Mode || !st.ModTime().Equal(f.ModTime) || (!f.IsDir() && st.Size() != f.Size) {
			t.Errorf("%s on disk: %v %v %d; record %v %v %d", f.Path, st.Mode(), st.ModTime(), st.Size(), f.Mode, f.ModTime, f.Size)
		}
		if strings.HasSuffix(f.Path, ".fits") && !f.IsLink() {
			data, _ := os.ReadFile(a.Local(f.Path))
			if len(data)%stagegen.BlockSize != 0 || !bytes.HasPrefix(data, []byte("SIMPLE  =                    T")) {
				t.Errorf("%s: %d bytes, starts %q: not FITS", f.Path, len(data), data[:min(30, len(data))])
			}
		}
	}
	large, _ := a.Lookup("/" + stagegen.LargeFile)
	if want := int64(1<<20) / stagegen.BlockSize * stagegen.BlockSize; large.Size != want {
		t.Errorf("large file %d bytes, want %d", large.Size, want)
	}
	if target, _ := os.Readlink(a.Local(stagegen.LinkFile)); target != stagegen.LinkTarget {
		t.Errorf("link -> %q", target)
	}
	if n := len(a.Children(stagegen.ManyDir)); n != 25 {
		t.Errorf("%d files in %s, want 25", n, stagegen.ManyDir)
	}
	checkAstropy(t, a)
}

// checkAstropy opens every FITS file with astropy, an independent reader.
func checkAstropy(t *testing.T, st *stagegen.Stage) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import astropy.io.fits").Run(); err != nil {
		missing(t, "astropy not importable by "+py, "make deps (or: apt-get install python3-astropy)", true)
		return
	}
	var files []string
	for _, f := range st.Files {
		if strings.HasSuffix(f.Path, ".fits") && f.Access == stagegen.Public {
			files = append(files, st.Local(f.Path))
		}
	}
	script := `
import json, sys, warnings
from astropy.io import fits
warnings.simplefilter("error")
out = {}
for p in json.load(sys.stdin):
    with fits.open(p, memmap=True) as h:
        h.verify("exception")
        out[p] = [list(u.data.shape) if u.data is not None else [] for u in h]
json.dump(out, sys.stdout)
`
	cmd := exec.Command(py, "-c", script)
	in, _ := json.Marshal(files)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("astropy: %v\n%s", err, out)
	}
	var shapes map[string][][]int
	if err := json.Unmarshal(out, &shapes); err != nil {
		t.Fatalf("astropy output %q: %v", out, err)
	}
	large := shapes[st.Local(stagegen.LargeFile)]
	if len(large) != 1 || len(large[0]) != 2 || large[0][1] != stagegen.BlockSize/2 {
		t.Errorf("large file shape %v", large)
	}
	jw := shapes[st.Local(stagegen.JWSTFile)]
	if len(jw) != 2 || len(jw[1]) != 2 {
		t.Errorf("JWST file units %v, want a primary and one 2-D image", jw)
	}
}
