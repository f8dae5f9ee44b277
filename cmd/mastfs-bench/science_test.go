package bench

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"mastfs/ftps/stagegen"
)

// The science stage (issue 12): a flat directory of small products, an
// HST flt and a JWST cal file, under sciRel.
const (
	sciRel = "science"
	// sciGlob picks 200 of the products: iexn000q_flt.fits to iexn199q_flt.fits.
	sciGlob     = "iexn[01]*_flt.fits"
	sciGlobN    = 200
	cutoutBytes = 100 * 100 * 4 // the cutout's pixels: 100x100 float32
)

var (
	sciProducts = path.Join(sciRel, stagegen.ProductsDir)
	sciFLT      = path.Join(sciRel, stagegen.FLTName)
	sciCal      = path.Join(sciRel, stagegen.CalName)
)

// sciUnit is what a figure 9 action walks, for its round trips per unit.
var sciUnit = map[string]struct {
	name  string
	count func(st *stage) int
}{
	figSciCp:     {"file", func(*stage) int { return sciGlobN }},
	figSciScan:   {"file", func(*stage) int { return sciGlobN }},
	figSciInfo:   {"HDU", func(*stage) int { return 7 + 9 }},
	figSciCutout: {"cutout", func(*stage) int { return 1 }},
	figSciLs:     {"directory", func(st *stage) int { return st.treeDirs }},
}

// rcharPy is the Python every figure 9 script starts with. rchar is the
// bytes the process has read through read(2) and the like, from its own
// counter. warm runs astropy once on a file in memory, so that the
// modules it imports on first use are not counted as the reader's bytes.
const rcharPy = `
import io
import numpy as np
def warm():
    b = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((2, 2), "f4"), name="SCI")]).writeto(b)
    for f in (lambda: fits.info(b, output=False), lambda: fits.getheader(b)):
        b.seek(0)
        f()
    b.seek(0)
    with fits.open(b, memmap=False) as h:
        float(h["SCI", 1].data.astype("float64").sum())
warm()
def rchar():
    with open('/proc/self/io') as f:
        for line in f:
            if line.startswith('rchar:'):
                return int(line.split()[1])
`

// Each script prints what it found (checked against the local stage), the
// bytes it read, and the seconds its loop took (the interpreter's start and
// the import are left out: they cost the same everywhere).
const (
	scanScript = `
import sys, time, glob, hashlib
from astropy.io import fits
` + rcharPy + `
r0 = rchar(); t0 = time.perf_counter()
files = sorted(glob.glob(sys.argv[1]))
h = hashlib.sha256()
for p in files:
    hdr = fits.getheader(p)
    h.update(repr((hdr.get('ROOTNAME'), hdr.get('EXPTIME'))).encode())
t1 = time.perf_counter(); r1 = rchar()
print("%d %s" % (len(files), h.hexdigest()[:16]))
print(r1 - r0)
print("%.6f" % (t1 - t0))
`
	infoScript = `
import sys, time, hashlib
from astropy.io import fits
` + rcharPy + `
r0 = rchar(); t0 = time.perf_counter()
n, h = 0, hashlib.sha256()
for p in sys.argv[1:]:
    for row in fits.info(p, output=False):
        n += 1
        h.update(repr(row[1:]).encode())
t1 = time.perf_counter(); r1 = rchar()
print("%d %s" % (n, h.hexdigest()[:16]))
print(r1 - r0)
print("%.6f" % (t1 - t0))
`
	cutoutScript = `
import sys, time
from astropy.io import fits
` + rcharPy + `
r0 = rchar(); t0 = time.perf_counter()
with fits.open(sys.argv[1], memmap=True) as h:
    d = h["SCI", 2].data[1000:1100, 2000:2100]
    s = float(d.astype("float64").sum())
t1 = time.perf_counter(); r1 = rchar()
print(repr(s))
print(r1 - r0)
print("%.6f" % (t1 - t0))
`
)

// pyRun runs a figure 9 script and returns what it found, the bytes it
// read and its loop's time in seconds.
func pyRun(script string, limit time.Duration, args ...string) (found string, read int64, secs float64, err error) {
	lines, err := python(script, 3, limit, args...)
	if err != nil {
		return "", 0, 0, err
	}
	read, err = strconv.ParseInt(lines[1], 10, 64)
	if err == nil {
		secs, err = strconv.ParseFloat(lines[2], 64)
	}
	return lines[0], read, secs, err
}

// sciScript is one astropy figure: its script and arguments under a root.
type sciScript struct {
	script string
	args   func(root string) []string
	extra  int64 // bytes asked for beyond those read (the cutout's pixels, touched through the map)
}

var sciScripts = map[string]sciScript{
	figSciScan: {scanScript, func(root string) []string {
		return []string{filepath.Join(root, sciProducts, sciGlob)}
	}, 0},
	figSciInfo: {infoScript, func(root string) []string {
		return []string{filepath.Join(root, sciFLT), filepath.Join(root, sciCal)}
	}, 0},
	figSciCutout: {cutoutScript, func(root string) []string {
		return []string{filepath.Join(root, sciFLT)}
	}, cutoutBytes},
}

// sciLocal runs the astropy figures on the local stage, for what each
// must find.
func sciLocal(st *stage) (map[string]string, error) {
	want := map[string]string{}
	for fig, s := range sciScripts {
		found, _, _, err := pyRun(s.script, 2*time.Minute, s.args(st.root)...)
		if err != nil {
			return nil, fmt.Errorf("%s on the local stage: %w", fig, err)
		}
		want[fig] = found
	}
	if !strings.HasPrefix(want[figSciScan], strconv.Itoa(sciGlobN)+" ") || !strings.HasPrefix(want[figSciInfo], "16 ") {
		return nil, fmt.Errorf("local stage: header scan found %q, fits.info %q; want %d files and 16 HDUs",
			want[figSciScan], want[figSciInfo], sciGlobN)
	}
	return want, nil
}

// globSize is the bytes of the products sciGlob picks.
func (s *stage) globSize() int64 {
	var n int64
	for rel, size := range s.sizes {
		if ok, _ := path.Match(sciProducts+"/"+sciGlob, rel); ok {
			n += size
		}
	}
	return n
}

// checkGlobCopy compares a copy of the globbed products with the stage.
func (s *stage) checkGlobCopy(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) != sciGlobN {
		return fmt.Errorf("copy holds %d files, want %d", len(ents), sciGlobN)
	}
	for _, ent := range ents {
		rel := sciProducts + "/" + ent.Name()
		if err := s.check(filepath.Join(dir, ent.Name()), rel, time.Minute); err != nil {
			return err
		}
	}
	return nil
}

// science is one figure 9 action for one peer: cold, on a fresh mount
// metered until its unmount (what is prefetched and never read is sent
// by then), or for curl straight from the server. want is what the
// astropy figures must find.
func (b *bench) science(e *place, p *peer, fig string, run int, want map[string]string) {
	limit := 10 * time.Minute
	cp := func(root string) (float64, int64, error) {
		dst, err := os.MkdirTemp(e.work, "cp-")
		if err != nil {
			return 0, 0, err
		}
		defer os.RemoveAll(dst)
		o := command{name: "sh", args: []string{"-c", `cp "$1"/` + sciGlob + ` "$2"/`, "sh",
			filepath.Join(root, sciProducts), dst}, limit: limit}.run()
		if o.err != nil {
			return 0, 0, o.err
		}
		return o.dur.Seconds(), e.st.globSize(), e.st.checkGlobCopy(dst)
	}
	act := func(root string) (float64, int64, error) {
		switch fig {
		case figSciCp:
			return cp(root)
		case figSciLs:
			o := command{name: "ls", args: []string{"-lR", filepath.Join(root, treeRel)}, limit: limit, capture: true}.run()
			if o.err != nil {
				return 0, 0, o.err
			}
			return o.dur.Seconds(), 0, e.st.checkLsTree(o.out)
		}
		s := sciScripts[fig]
		found, read, secs, err := pyRun(s.script, limit, s.args(root)...)
		if err == nil && found != want[fig] {
			err = fmt.Errorf("astropy found %q, want %q (from the local stage)", found, want[fig])
		}
		return secs, read + s.extra, err
	}
	switch p.kind {
	case kindCurl:
		e.waitIdle()
		mk := e.meter.begin()
		v, asked, err := b.sciCurl(e, fig, limit)
		b.record(e, fig, p, "s", sample{Run: run, Value: v, Asked: asked, OK: err == nil, Err: errString(err),
			Cost: e.meter.end(mk)})
	case kindMount:
		b.withMountUntilEnd(e, p, fig, "s", run, func(*mount) (float64, error) { return 0, nil },
			func(m *mount) (float64, int64, error) { return act(m.root()) })
	}
}

// sciCurl is figure 9c for curl: the flt and the cal downloaded whole by
// one curl process over one connection, and checked.
func (b *bench) sciCurl(e *place, fig string, limit time.Duration) (float64, int64, error) {
	if fig != figSciInfo {
		return 0, 0, fmt.Errorf("%s: not a curl figure", fig)
	}
	rels := []string{sciFLT, sciCal}
	dst, err := os.MkdirTemp(e.work, "curl-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dst)
	c := e.curl(rels[0], 0, false, limit)
	c.args = c.args[:len(c.args)-3] // "-o", os.DevNull and the URL: each file gets its own
	var asked int64
	for i, rel := range rels {
		c.args = append(c.args, "-o", filepath.Join(dst, strconv.Itoa(i)), e.url(rel))
		asked += e.st.sizes[rel]
	}
	o := c.run()
	if o.err != nil {
		return 0, 0, o.err
	}
	for i, rel := range rels {
		if err := e.st.check(filepath.Join(dst, strconv.Itoa(i)), rel, limit); err != nil {
			return 0, 0, err
		}
	}
	return o.dur.Seconds(), asked, nil
}
