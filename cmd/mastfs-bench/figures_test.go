package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// bench is one benchmark run: where it measures and what it records.
type bench struct {
	sz       sizes
	book     *book
	logf     func(format string, args ...any)
	only     []string // sections to run (MASTFS_BENCH_ONLY); none: all
	pixelSum string   // the pixel loop's sum on the local large file (figure 10e)
}

// rotate returns peers starting at the i-th, so no peer always goes first.
func rotate(peers []*peer, i int) []*peer {
	k := i % len(peers)
	return append(append([]*peer(nil), peers[k:]...), peers[:k]...)
}

// figTag is a figure's number, for file names: "f3", "f6a".
func figTag(fig string) string { return "f" + strings.Fields(fig)[0] }

func mbps(bytes int64, d time.Duration) float64 { return float64(bytes) / 1e6 / d.Seconds() }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// record adds a sample, logging failures as they happen.
func (b *bench) record(e *place, fig string, p *peer, unit string, x sample) {
	if !x.OK {
		b.logf("%s %s %s run %d: FAILED: %s", e.name, fig, p.name, x.Run, x.Err)
	} else {
		b.logf("%s %s %s run %d: %.4g %s (%d cmds, %d RETR, %d LIST, %d conns, sent %d)", e.name, fig, p.name, x.Run,
			x.Value, unit, x.Cost.Commands, x.Cost.Retrs, x.Cost.Lists, x.Cost.Conns, x.Cost.Sent)
	}
	b.book.add(e.name, fig, p.name, unit, x)
}

// withMount mounts p, runs fn on it, and unmounts; a failure to mount or
// unmount becomes the sample's error. fn records its own samples; on a
// mount failure fail records one failed sample for each figure fn measures.
func (b *bench) withMount(e *place, p *peer, tag string, fail func(err error), fn func(m *mount)) {
	m, err := e.mount(p, tag)
	if err != nil {
		fail(err)
		return
	}
	fn(m)
	if err := m.unmount(); err != nil {
		b.book.note(fmt.Sprintf("%s %s: %v", e.name, p.name, err))
	}
}

// coldRead is figures 1, 2 and 7: a cold cat of the large file on a fresh
// mount, checked, then (near only) a warm cat on the same mount.
func (b *bench) coldRead(e *place, p *peer, run int, warm bool) {
	size := e.st.largeSize
	limit := b.sz.readLimit(e, size)
	switch p.kind {
	case kindCurl:
		e.waitIdle()
		mk := e.meter.begin()
		o := e.curl(largeRel, 0, false, limit).run()
		x := sample{Run: run, Cost: e.meter.end(mk), OK: o.err == nil, Err: errString(o.err)}
		if x.OK {
			x.Value = mbps(size, o.dur)
		}
		b.record(e, figCold, p, "MB/s", x)
	case kindLocal:
		o := command{name: "cat", args: []string{filepath.Join(e.st.root, largeRel)}, limit: limit}.run()
		b.record(e, figWarm, p, "MB/s", sample{Run: run, OK: o.err == nil, Err: errString(o.err), Value: mbps(size, o.dur)})
	case kindMount:
		b.withMount(e, p, fmt.Sprintf("f1-r%d", run), func(err error) {
			b.record(e, figCold, p, "MB/s", sample{Run: run, Err: err.Error()})
		}, func(m *mount) {
			file := filepath.Join(m.root(), largeRel)
			mk := e.meter.begin()
			o := command{name: "cat", args: []string{file}, limit: limit}.run()
			x := sample{Run: run, RSS: vmHWM(m.pid()), Err: errString(o.err)}
			x.Cost = e.meter.end(mk)
			if o.err == nil && e.verifies(p) {
				o.err = e.st.check(file, largeRel, limit)
				x.Err = errString(o.err)
			}
			x.OK = o.err == nil
			if x.OK {
				x.Value = mbps(size, o.dur)
			} else {
				x.Err += " | log: " + m.tail()
			}
			b.record(e, figCold, p, "MB/s", x)
			if !warm {
				return
			}
			if !x.OK {
				b.record(e, figWarm, p, "MB/s", sample{Run: run, Err: "not measured: the cold read failed"})
				return
			}
			mk = e.meter.begin()
			o = command{name: "cat", args: []string{file}, limit: limit}.run()
			w := sample{Run: run, Cost: e.meter.end(mk), OK: o.err == nil, Err: errString(o.err)}
			if w.OK {
				w.Value = mbps(size, o.dur)
			}
			b.record(e, figWarm, p, "MB/s", w)
		})
	}
}

// headerRead is figure 3: with the file's directory already listed, the
// first 2,880 bytes of the large file, cold. The bytes the server sent are
// counted after the unmount, since a stream cut short is logged only when
// it closes.
func (b *bench) headerRead(e *place, p *peer, run int) {
	const n = 2880
	limit := 60 * time.Second
	check := func(o outcome) error {
		if o.err != nil {
			return o.err
		}
		return e.st.checkPrefix(largeRel, o.out, n)
	}
	switch p.kind {
	case kindCurl:
		e.waitIdle()
		mk := e.meter.begin()
		o := e.curl(largeRel, n, true, limit).run()
		err := check(o)
		b.record(e, figHeader, p, "ms", sample{Run: run, Cost: e.meter.end(mk), OK: err == nil,
			Err: errString(err), Value: float64(o.dur.Microseconds()) / 1e3})
	case kindMount:
		b.withMountUntilEnd(e, p, figHeader, "ms", run, func(m *mount) (float64, error) {
			if _, err := os.ReadDir(filepath.Join(m.root(), filepath.Dir(largeRel))); err != nil {
				return 0, fmt.Errorf("list first: %w", err)
			}
			return 0, nil
		}, func(m *mount) (float64, int64, error) {
			o := command{name: "head", args: []string{"-c", strconv.Itoa(n), filepath.Join(m.root(), largeRel)},
				limit: limit, capture: true}.run()
			return float64(o.dur.Microseconds()) / 1e3, 0, check(o)
		})
	}
}

// withMountUntilEnd runs prep untimed and then act on a fresh mount, and
// meters the server from just before act until after the unmount. act
// returns its value and the bytes its reader asked for (0: not counted).
func (b *bench) withMountUntilEnd(e *place, p *peer, fig, unit string, run int,
	prep func(m *mount) (float64, error), act func(m *mount) (float64, int64, error)) {
	m, err := e.mount(p, fmt.Sprintf("%s-r%d", figTag(fig), run))
	if err != nil {
		b.record(e, fig, p, unit, sample{Run: run, Err: err.Error()})
		return
	}
	if _, err := prep(m); err != nil {
		b.record(e, fig, p, unit, sample{Run: run, Err: err.Error() + " | log: " + m.tail()})
		_ = m.unmount()
		return
	}
	mk := e.meter.begin()
	v, asked, err := act(m)
	x := sample{Run: run, Value: v, Asked: asked, OK: err == nil, Err: errString(err), RSS: vmHWM(m.pid())}
	if err != nil {
		x.Err += " | log: " + m.tail()
	}
	if uerr := m.unmount(); uerr != nil {
		b.book.note(fmt.Sprintf("%s %s %s run %d: %v", e.name, fig, p.name, run, uerr))
	}
	x.Cost = e.meter.end(mk)
	b.record(e, fig, p, unit, x)
}

// astropyScript opens a FITS file the way a notebook would, memory-mapped,
// reads one header card and one pixel from the middle of the image, and
// prints them with the time that took (the interpreter's start and the
// import are left out: they cost the same everywhere).
const astropyScript = `
import sys, time
from astropy.io import fits
t0 = time.perf_counter()
with fits.open(sys.argv[1], memmap=True) as h:
    card = h[0].header["OBJECT"]
    data = h[0].data
    px = int(data[data.shape[0] // 2, 7])
t1 = time.perf_counter()
print(card)
print(px)
print("%.6f" % (t1 - t0))
`

// astropy is figure 4.
func (b *bench) astropy(e *place, p *peer, run int, want string) {
	limit := 120 * time.Second
	act := func(root string) (float64, error) {
		o := command{name: "/usr/bin/python3", args: []string{"-c", astropyScript, filepath.Join(root, largeRel)},
			limit: limit, capture: true}.run()
		if o.err != nil {
			return 0, o.err
		}
		lines := strings.Split(strings.TrimSpace(string(o.out)), "\n")
		if len(lines) != 3 {
			return 0, fmt.Errorf("astropy printed %q", o.out)
		}
		if got := lines[0] + "|" + lines[1]; want != "" && got != want {
			return 0, fmt.Errorf("astropy read %q, want %q (from the local file)", got, want)
		}
		secs, err := strconv.ParseFloat(lines[2], 64)
		return secs * 1e3, err
	}
	switch p.kind {
	case kindLocal:
		v, err := act(e.st.root)
		b.record(e, figAstropy, p, "ms", sample{Run: run, Value: v, OK: err == nil, Err: errString(err)})
	case kindMount:
		b.withMountUntilEnd(e, p, figAstropy, "ms", run, func(m *mount) (float64, error) {
			_, err := os.ReadDir(filepath.Join(m.root(), filepath.Dir(largeRel)))
			return 0, err
		}, func(m *mount) (float64, int64, error) {
			v, err := act(m.root())
			return v, 0, err
		})
	}
}

// astropyLocal runs the script on the local file, for the expected output.
func astropyLocal(root string) (string, error) {
	lines, err := python(astropyScript, 3, 2*time.Minute, filepath.Join(root, largeRel))
	if err != nil {
		return "", err
	}
	return lines[0] + "|" + lines[1], nil
}

// python runs a script with /usr/bin/python3 (where Debian's astropy is)
// and returns the n lines it must print.
func python(script string, n int, limit time.Duration, args ...string) ([]string, error) {
	o := command{name: "/usr/bin/python3", args: append([]string{"-c", script}, args...), limit: limit, capture: true}.run()
	if o.err != nil {
		return nil, o.err
	}
	lines := strings.Split(strings.TrimSpace(string(o.out)), "\n")
	if len(lines) != n {
		return nil, fmt.Errorf("python printed %q, not %d lines", o.out, n)
	}
	return lines, nil
}

// listing is figure 5 on one mount (or the local stage): ls -lR of the
// tree cold then warm, ls -l of the small-file directory, and (with cp)
// cp -r of it. With lsOnly, the cold ls -lR alone.
func (b *bench) listing(e *place, p *peer, run int, cp, lsOnly bool) {
	limit := b.sz.lsLimit(e, p)
	type step struct {
		fig string
		do  func(root string) (time.Duration, error)
	}
	lsR := func(root string) (time.Duration, error) {
		o := command{name: "ls", args: []string{"-lR", filepath.Join(root, treeRel)}, limit: limit, capture: true}.run()
		if o.err != nil {
			return o.dur, o.err
		}
		return o.dur, e.st.checkLsTree(o.out)
	}
	steps := []step{{figLsCold, lsR}}
	if !lsOnly {
		steps = append(steps, step{figLsWarm, lsR}, step{figLsMany, func(root string) (time.Duration, error) {
			o := command{name: "ls", args: []string{"-l", filepath.Join(root, manyRel)}, limit: limit, capture: true}.run()
			if o.err != nil {
				return o.dur, o.err
			}
			return o.dur, e.st.checkLsMany(o.out)
		}})
		if cp {
			steps = append(steps, step{figCp, func(root string) (time.Duration, error) {
				dst, err := os.MkdirTemp(e.work, "cp-")
				if err != nil {
					return 0, err
				}
				defer os.RemoveAll(dst)
				o := command{name: "cp", args: []string{"-r", filepath.Join(root, manyRel), dst}, limit: b.sz.cpLimit}.run()
				if o.err != nil {
					return o.dur, o.err
				}
				return o.dur, e.st.checkCopy(filepath.Join(dst, manyRel))
			}})
		}
	}
	runSteps := func(root string, pid int, tail func() string) {
		for _, s := range steps {
			mk := e.meter.begin()
			d, err := s.do(root)
			x := sample{Run: run, Value: d.Seconds(), OK: err == nil, Err: errString(err)}
			x.Cost = e.meter.end(mk)
			if pid != 0 {
				x.RSS = vmHWM(pid)
			}
			if err != nil && tail != nil {
				x.Err += " | log: " + tail()
			}
			b.record(e, s.fig, p, "s", x)
		}
	}
	switch p.kind {
	case kindLocal:
		runSteps(e.st.root, 0, nil)
	case kindMount:
		b.withMount(e, p, fmt.Sprintf("f5-r%d", run), func(err error) {
			for _, s := range steps {
				b.record(e, s.fig, p, "s", sample{Run: run, Err: err.Error()})
			}
		}, func(m *mount) { runSteps(m.root(), m.pid(), m.tail) })
	}
}

// parallel is figure 6: one reader of one part on a fresh mount, then 8
// readers of 8 other parts at once on another fresh mount.
func (b *bench) parallel(e *place, p *peer, run int) {
	one := e.st.parts[parallelN]
	many := e.st.parts[:parallelN]
	limit := b.sz.readLimit(e, e.st.partSize*parallelN)
	readers := func(root string, rels []string) []command {
		var cmds []command
		for _, rel := range rels {
			if p.kind == kindCurl {
				cmds = append(cmds, e.curl(rel, 0, false, limit))
			} else {
				cmds = append(cmds, command{name: "cat", args: []string{filepath.Join(root, rel)}, limit: limit})
			}
		}
		return cmds
	}
	measure := func(fig string, rels []string, m *mount) {
		root := ""
		if m != nil {
			root = m.root()
		}
		mk := e.meter.begin()
		wall, err := runAll(readers(root, rels))
		x := sample{Run: run, Cost: e.meter.end(mk)}
		if m != nil {
			x.RSS = vmHWM(m.pid())
			for _, rel := range rels {
				if err == nil && e.verifies(p) {
					err = e.st.check(filepath.Join(root, rel), rel, limit)
				}
			}
			if err != nil {
				err = errors.Join(err, errors.New("log: "+m.tail()))
			}
		}
		x.OK, x.Err = err == nil, errString(err)
		if x.OK {
			x.Value = mbps(e.st.partSize*int64(len(rels)), wall)
		}
		b.record(e, fig, p, "MB/s", x)
	}
	for _, c := range []struct {
		fig  string
		rels []string
	}{{figOne, []string{one}}, {figParallel, many}} {
		if p.kind == kindCurl {
			e.waitIdle()
			measure(c.fig, c.rels, nil)
			continue
		}
		e.waitIdle()
		b.withMount(e, p, fmt.Sprintf("%s-r%d", figTag(c.fig), run), func(err error) {
			b.record(e, c.fig, p, "MB/s", sample{Run: run, Err: err.Error()})
		}, func(m *mount) { measure(c.fig, c.rels, m) })
	}
}
