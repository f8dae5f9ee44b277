package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Figures 10 (issue 13): what a cold read costs in CPU, cp -r on a fresh
// mount, and what a wholly cached file is served at after a remount, with
// passthrough (root's mount) and without (an ordinary user's).

const gib = 1 << 30

// cpu is figure 10a: the CPU a cold sequential read of the large file
// costs the FUSE server (its user and system time from /proc, from just
// before the read until the server's logs settle after it), or curl (its
// own rusage), per GiB. The read's speed is recorded beside it.
func (b *bench) cpu(e *place, p *peer, run int) {
	size := e.st.largeSize
	limit := b.sz.readLimit(e, size)
	rec := func(x sample, cpu time.Duration, dur time.Duration) {
		r := sample{Run: run, OK: x.OK, Err: x.Err} // the cost is counted once, in figure 10a
		if x.OK {
			x.Value = cpu.Seconds() / (float64(size) / gib)
			r.Value = mbps(size, dur)
		}
		b.record(e, figCPU, p, "CPU s/GiB", x)
		b.record(e, figCPURate, p, "MB/s", r)
	}
	switch p.kind {
	case kindCurl:
		e.waitIdle()
		mk := e.meter.begin()
		o := e.curl(largeRel, 0, false, limit).run()
		rec(sample{Run: run, Cost: e.meter.end(mk), OK: o.err == nil, Err: errString(o.err)}, o.cpu, o.dur)
	case kindMount:
		b.withMount(e, p, fmt.Sprintf("f10a-r%d", run), func(err error) {
			rec(sample{Run: run, Err: err.Error()}, 0, 0)
		}, func(m *mount) {
			file := filepath.Join(m.root(), largeRel)
			c0 := cpuTime(m.pid())
			mk := e.meter.begin()
			o := m.reader("cat", limit, false, file).run()
			x := sample{Run: run, Cost: e.meter.end(mk), RSS: vmHWM(m.pid()), Err: errString(o.err)}
			c1 := cpuTime(m.pid())
			if o.err == nil && (c0 < 0 || c1 < 0) {
				o.err = fmt.Errorf("no CPU time for pid %d in /proc", m.pid())
				x.Err = o.err.Error()
			}
			if o.err == nil {
				o.err = e.st.check(file, largeRel, limit)
				x.Err = errString(o.err)
			}
			x.OK = o.err == nil
			rec(x, c1-c0, o.dur)
		})
	}
}

// cpCold is figure 10b: cp -r of the small-file directory on a fresh
// mount, its listing cold too.
func (b *bench) cpCold(e *place, p *peer, run int) {
	b.withMountUntilEnd(e, p, figCpCold, "s", run, func(*mount) (float64, error) { return 0, nil },
		func(m *mount) (float64, int64, error) {
			dst, err := os.MkdirTemp(e.work, "cp-")
			if err != nil {
				return 0, 0, err
			}
			defer os.RemoveAll(dst)
			o := command{name: "cp", args: []string{"-r", filepath.Join(m.root(), manyRel), dst}, limit: b.sz.cpLimit}.run()
			if o.err != nil {
				return 0, 0, o.err
			}
			return o.dur.Seconds(), 0, e.st.checkCopy(filepath.Join(dst, manyRel))
		})
}

// pixelScript sums every pixel of a FITS image through a memory map, in
// slabs of rows (a notebook's loop over a whole image), raw pixels as
// stored, and prints the sum and the seconds the loop took.
const pixelScript = `
import sys, time
import numpy as np
from astropy.io import fits
t0 = time.perf_counter()
with fits.open(sys.argv[1], memmap=True, do_not_scale_image_data=True) as h:
    d = h[0].data
    s = 0
    for i in range(0, d.shape[0], 4096):
        s += int(d[i:i + 4096].sum(dtype=np.int64))
t1 = time.perf_counter()
print(s)
print("%.6f" % (t1 - t0))
`

// cachedReads are figures 10c, 10d and 10e on one root: cat, then dd
// bs=1M, then the astropy pixel loop, of the large file. run runs each
// command (as the mount's user); the loop's sum must be the local file's.
func (b *bench) cachedReads(e *place, p *peer, r int, root string, run func(name string, args ...string) outcome,
	meter func() func() cost) {
	file := filepath.Join(root, largeRel)
	size := e.st.largeSize
	for _, c := range []struct {
		fig  string
		name string
		args []string
	}{
		{figRemountCat, "cat", []string{file}},
		{figRemountDD, "dd", []string{"if=" + file, "of=/dev/null", "bs=1M"}},
		{figPixelLoop, "/usr/bin/python3", []string{"-c", pixelScript, file}},
	} {
		end := meter()
		o := run(c.name, c.args...)
		x := sample{Run: r, OK: o.err == nil, Err: errString(o.err), Cost: end()}
		unit := "MB/s"
		if c.fig == figPixelLoop {
			unit = "s"
			lines := strings.Split(strings.TrimSpace(string(o.out)), "\n")
			if x.OK && len(lines) != 2 {
				x.OK, x.Err = false, fmt.Sprintf("python printed %q", o.out)
			}
			if x.OK {
				x.Value, _ = strconv.ParseFloat(lines[1], 64)
			}
			if x.OK && lines[0] != b.pixelSum {
				x.OK, x.Err = false, fmt.Sprintf("the pixel loop summed %s, the local file %s", lines[0], b.pixelSum)
			}
		} else if x.OK {
			x.Value = mbps(size, o.dur)
		}
		b.record(e, c.fig, p, unit, x)
	}
}

// remount is figures 10c-10e for one peer: a fresh mount reads the large
// file whole (checked), is unmounted keeping its cache, and a second
// mount on the same cache is read. The local peer reads the stage's own
// file, in the page cache.
func (b *bench) remount(e *place, p *peer, run int) {
	limit := b.sz.readLimit(e, e.st.largeSize)
	if p.kind == kindLocal {
		root := e.st.root
		_ = command{name: "cat", args: []string{filepath.Join(root, largeRel)}, limit: limit}.run()
		b.cachedReads(e, p, run, root, func(name string, args ...string) outcome {
			return command{name: name, args: args, limit: limit, capture: name != "cat" && name != "dd"}.run()
		}, func() func() cost { return func() cost { return cost{} } })
		return
	}
	fail := func(err error) {
		for _, fig := range []string{figRemountCat, figRemountDD, figPixelLoop} {
			b.record(e, fig, p, map[bool]string{true: "s", false: "MB/s"}[fig == figPixelLoop],
				sample{Run: run, Err: err.Error()})
		}
	}
	first, err := e.mountWith(p, fmt.Sprintf("f10fill-r%d", run), mountOpts{keep: true})
	if err != nil {
		fail(err)
		return
	}
	o := first.reader("sha256sum", limit, true, filepath.Join(first.root(), largeRel)).run()
	if o.err == nil && !strings.HasPrefix(string(o.out), e.st.sums[largeRel]) {
		o.err = fmt.Errorf("filling the cache: sha256 %.12s…, want %.12s…", o.out, e.st.sums[largeRel])
	}
	uerr := first.unmount()
	if o.err != nil || uerr != nil {
		fail(fmt.Errorf("fill the cache: %v %v | log: %s", o.err, uerr, first.tail()))
		first.keep = false
		first.cleanup()
		return
	}
	m, err := e.mountWith(p, fmt.Sprintf("f10-r%d", run), mountOpts{base: first.base})
	if err != nil {
		first.keep = false
		first.cleanup()
		fail(err)
		return
	}
	defer func() {
		if err := m.unmount(); err != nil {
			b.book.note(fmt.Sprintf("%s %s remount run %d: %v", e.name, p.name, run, err))
		}
	}()
	// The figures time reads, not the fresh mount's first listing.
	if o := m.reader("stat", limit, true, filepath.Join(m.root(), largeRel)).run(); o.err != nil {
		fail(fmt.Errorf("stat after the remount: %w | log: %s", o.err, m.tail()))
		return
	}
	b.cachedReads(e, p, run, m.root(), func(name string, args ...string) outcome {
		return m.reader(name, limit, name != "cat" && name != "dd", args...).run()
	}, func() func() cost {
		mk := e.meter.begin()
		return func() cost { return e.meter.end(mk) }
	})
	if c := m.reader("sha256sum", limit, true, filepath.Join(m.root(), largeRel)).run(); c.err != nil ||
		!strings.HasPrefix(string(c.out), e.st.sums[largeRel]) {
		b.book.note(fmt.Sprintf("%s %s remount run %d: the file read after the remount differs from the stage: %v %.12s",
			e.name, p.name, run, c.err, c.out))
	}
	if run == 0 {
		b.book.note(fmt.Sprintf("%s %s after a remount, wholly cached: %s", e.name, p.name, readPath(m.logText())))
	}
}

// readPath says which path a mount's reads took, from its log.
func readPath(log string) string {
	switch {
	case strings.Contains(log, "passthrough on"):
		return "passthrough (the log says \"passthrough on\")"
	case strings.Contains(log, "refused passthrough"):
		return "FUSE reads (the kernel refused passthrough)"
	case strings.Contains(log, "passthrough off"):
		return "FUSE reads (passthrough off)"
	}
	return "FUSE reads (the log does not mention passthrough: not asked for)"
}

// openFuseDevice lets ordinary users open /dev/fuse, as Debian's udev
// does (crw-rw-rw-); containers often leave it to root, and fusermount3
// opens it as the user. It returns what puts the mode back.
func openFuseDevice(bk *book) (restore func()) {
	st, err := os.Stat("/dev/fuse")
	if err != nil || st.Mode().Perm()&0o006 == 0o006 {
		return func() {}
	}
	if err := os.Chmod("/dev/fuse", 0o666); err != nil {
		bk.note("/dev/fuse is " + st.Mode().Perm().String() + " and could not be opened to users: " + err.Error())
		return func() {}
	}
	bk.note(fmt.Sprintf("/dev/fuse was %v: made crw-rw-rw- (Debian's mode) for the ordinary user's mounts, then put back",
		st.Mode().Perm()))
	return func() { _ = os.Chmod("/dev/fuse", st.Mode().Perm()) }
}

// pixelLocal is the pixel loop's sum on the local file.
func pixelLocal(root string) (string, error) {
	lines, err := python(pixelScript, 2, 5*time.Minute, filepath.Join(root, largeRel))
	if err != nil {
		return "", err
	}
	return lines[0], nil
}
