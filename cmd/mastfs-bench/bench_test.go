// Package bench measures mastfs side by side with rclone mount and curl
// against one vsftpd serving a generated MAST-like stage over explicit
// FTPS, on loopback ("near") and through a delaying proxy ("far"), and
// writes the results to results/ as Markdown, JSON and a chart.
//
// It runs only when asked, as "make bench" does:
//
//	MASTFS_BENCH=1 go test -run TestBench -timeout 60m -v ./cmd/mastfs-bench/
//	MASTFS_BENCH=quick go test -run TestBench -v ./cmd/mastfs-bench/   # small files, 3 runs
package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"mastfs/ftps/ftpstest"
	"mastfs/ftps/ftpstest/netproxy"
)

// sizes is the shape of one benchmark run.
type sizes struct {
	name                             string
	large, part                      int64
	many                             int
	treeDirs, treeSubdirs, treeFiles int
	runs                             int // near figures
	cpRuns                           int // cp -r of the small-file dir (slow: one RETR per file)
	farColdRuns                      int // far figure 1 (the slowest: 1 GiB at window/RTT, five peers)
	farReadRuns                      int // far figure 6
	farRuns                          int // far figure 3
	farLsRuns, farLsRcloneRuns       int // far ls -lR, mastfs and rclone
	sciRuns, sciRcloneRuns           int // figures 9: mastfs and curl; rclone (far: minutes a run)
	farSciRclone                     []*peer
	cpLimit                          time.Duration
	out                              string // results directory
}

var (
	fullSizes = sizes{name: "full", large: 1 << 30, part: 50e6, many: 5000,
		treeDirs: 8, treeSubdirs: 8, treeFiles: 30,
		runs: 5, cpRuns: 3, farColdRuns: 2, farReadRuns: 3, farRuns: 5, farLsRuns: 3, farLsRcloneRuns: 1,
		sciRuns: 3, sciRcloneRuns: 1, farSciRclone: []*peer{peerRcloneFull, peerRcloneOff},
		cpLimit: 4 * time.Minute, out: "results"}
	quickSizes = sizes{name: "quick", large: 128 << 20, part: 8e6, many: 500,
		treeDirs: 4, treeSubdirs: 4, treeFiles: 10,
		runs: 3, cpRuns: 3, farColdRuns: 2, farReadRuns: 2, farRuns: 3, farLsRuns: 2, farLsRcloneRuns: 1,
		sciRuns: 2, sciRcloneRuns: 1, farSciRclone: []*peer{peerRcloneFull},
		cpLimit: 2 * time.Minute, out: "results/quick"}
)

// Far away: 50 ms each way, 4 MiB in flight per connection and direction.
const (
	farHost   = "127.0.0.3"
	farDelay  = 50 * time.Millisecond
	farWindow = 4 << 20
)

// readLimit bounds reading n bytes: generous against the slowest peer seen.
func (s sizes) readLimit(e *place, n int64) time.Duration {
	if e.name == "far" {
		return 30*time.Second + time.Duration(float64(n)/10e6*float64(time.Second))
	}
	return 20*time.Second + time.Duration(float64(n)/20e6*float64(time.Second))
}

// lsLimit bounds one listing command.
func (s sizes) lsLimit(e *place, p *peer) time.Duration {
	if e.name == "far" {
		return 10 * time.Minute
	}
	return 2 * time.Minute
}

func TestBench(t *testing.T) {
	sz := fullSizes
	switch os.Getenv("MASTFS_BENCH") {
	case "":
		t.Skip("set MASTFS_BENCH=1 (or quick) to run the benchmarks; make bench does")
	case "quick":
		sz = quickSizes
	}
	if os.Geteuid() != 0 {
		t.Fatal("the benchmarks need root (vsftpd's chroot, FUSE mounts)")
	}
	for _, bin := range []string{"rclone", "curl", "vsftpd", "/usr/bin/python3"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s missing: run make bench, which installs it (cmd/mastfs-bench/deps.sh)", bin)
		}
	}
	begin := time.Now()
	work, err := os.MkdirTemp("", "mastfs-bench-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("work directory (mount logs are kept there): %s", work)
	bk := &book{params: map[string]string{"conn_poll": "dedup"}}
	b := &bench{sz: sz, book: bk, logf: t.Logf, only: parseOnly(os.Getenv("MASTFS_BENCH_ONLY"))}
	for _, o := range b.only {
		if !slices.ContainsFunc(sectionNames, (&bench{only: []string{o}}).runs) {
			t.Fatalf("MASTFS_BENCH_ONLY: no section %q; sections: %s", o, strings.Join(sectionNames, "; "))
		}
	}
	if len(b.only) > 0 {
		bk.params["only"] = strings.Join(b.only, "; ")
	}
	defer func() {
		bk.params["duration"] = time.Since(begin).Round(time.Second).String()
		if err := writeResults(b, sz.out); err != nil {
			t.Errorf("write results: %v", err)
		} else {
			t.Logf("results in %s", sz.out)
		}
	}()

	stopLoad := sampleLoad(bk)
	defer stopLoad()

	mastfsBin := filepath.Join(work, "mastfs")
	if out, err := exec.Command("go", "build", "-o", mastfsBin, "../mastfs").CombinedOutput(); err != nil {
		t.Fatalf("build mastfs: %v\n%s", err, out)
	}
	collectVersions(bk)

	st := writeStage(t, sz)
	bk.params["stage"] = fmt.Sprintf("%s (%d bytes); %d parts of %d bytes; %s: %d files of 2,880 bytes; "+
		"%s: %d dirs, %d files (%d entries); %s: %s (%d bytes), %s (%d bytes), %s/: 500 products", largeRel, st.largeSize,
		len(st.parts), st.partSize, manyRel, st.manyFiles, treeRel, st.treeDirs, st.treeFiles, st.treeDirs+st.treeFiles,
		sciRel, sciFLT, st.sizes[sciFLT], sciCal, st.sizes[sciCal], sciProducts)
	near := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: st.Stage, PasvPorts: 100, Name: "vsftpd-near"})
	farSrv := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: st.Stage, PasvPorts: 100, Name: "vsftpd-far",
		PasvAddress: farHost})
	ports := []int{farSrv.Port}
	for p := farSrv.PasvMin; p <= farSrv.PasvMax; p++ {
		ports = append(ports, p)
	}
	proxy, err := netproxy.Start(netproxy.Config{ListenHost: farHost, TargetHost: farSrv.Host, Ports: ports,
		Delay: farDelay, Window: farWindow})
	if err != nil {
		t.Fatalf("delay proxy: %v", err)
	}
	defer proxy.Close()

	rcloneConf := filepath.Join(work, "rclone.conf")
	if err := os.WriteFile(rcloneConf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	obscured, err := exec.Command("rclone", "obscure", near.AnonPassword).Output()
	if err != nil {
		t.Fatalf("rclone obscure: %v", err)
	}
	mk := func(name, host string, s *ftpstest.Server) *place {
		return &place{name: name, host: host, srv: s, meter: meter{s}, st: st, work: work,
			pass: strings.TrimSpace(string(obscured)), mastfs: mastfsBin, rclone: rcloneConf}
	}
	nearP, farP := mk("near", near.Host, near), mk("far", farHost, farSrv)

	// The server reads its files from the page cache in every run alike.
	if o := nearP.curl(largeRel, 0, false, 5*time.Minute).run(); o.err != nil {
		t.Fatalf("curl cannot read the stage: %v", o.err)
	}
	if len(b.only) == 0 {
		probeRcloneDefault(b, nearP)
	}

	section := func(name string, fn func()) {
		if !b.runs(name) {
			return
		}
		t0 := time.Now()
		fn()
		t.Logf("== %s done in %v (total %v)", name, time.Since(t0).Round(time.Second), time.Since(begin).Round(time.Second))
	}
	mounts := []*peer{peerMastfs, peerRcloneFull, peerRcloneOff}
	section("near: figures 1, 2, 7", func() {
		for i := 0; i < sz.runs; i++ {
			for _, p := range rotate([]*peer{peerCurl, peerMastfs, peerMastfs1, peerRcloneFull, peerRcloneOff, peerLocal}, i) {
				b.coldRead(nearP, p, i, true)
			}
		}
	})
	section("near: figure 3", func() {
		for i := 0; i < sz.runs; i++ {
			for _, p := range rotate(append([]*peer{peerCurl}, mounts...), i) {
				b.headerRead(nearP, p, i)
			}
		}
	})
	section("near: figure 4", func() {
		want, err := astropyLocal(st.root)
		if err != nil {
			t.Fatalf("astropy on the local file: %v", err)
		}
		for i := 0; i < sz.runs; i++ {
			for _, p := range rotate(append([]*peer{peerLocal}, mounts...), i) {
				b.astropy(nearP, p, i, want)
			}
		}
	})
	section("near: figure 5", func() {
		for i := 0; i < sz.runs; i++ {
			for _, p := range rotate(append([]*peer{peerLocal}, mounts...), i) {
				b.listing(nearP, p, i, i < sz.cpRuns, false)
			}
		}
	})
	section("near: figure 6", func() {
		for i := 0; i < sz.runs; i++ {
			for _, p := range rotate(append([]*peer{peerCurl}, mounts...), i) {
				b.parallel(nearP, p, i)
			}
		}
	})

	// Far away: figures 1, 3, 5 (ls -lR cold) and 6.
	section("far: figure 1", func() {
		for i := 0; i < sz.farColdRuns; i++ {
			for _, p := range rotate([]*peer{peerCurl, peerMastfs, peerMastfs1, peerRcloneFull, peerRcloneOff}, i) {
				b.coldRead(farP, p, i, false)
			}
		}
	})
	section("far: figure 3", func() {
		for i := 0; i < sz.farRuns; i++ {
			for _, p := range rotate(append([]*peer{peerCurl}, mounts...), i) {
				b.headerRead(farP, p, i)
			}
		}
	})
	section("far: figure 5 (ls -lR cold)", func() {
		for i := 0; i < sz.farLsRuns; i++ {
			b.listing(farP, peerMastfs, i, false, true)
			if i < sz.farLsRcloneRuns {
				b.listing(farP, peerRcloneOff, i, false, true)
			}
		}
	})
	section("far: figure 6", func() {
		for i := 0; i < sz.farReadRuns; i++ {
			for _, p := range rotate(append([]*peer{peerCurl}, mounts...), i) {
				b.parallel(farP, p, i)
			}
		}
	})
	b.issue12(t, section, nearP, farP)
	b.issue13(t, section, nearP)
	ps := proxy.Stats()
	bk.params["proxy"] = fmt.Sprintf("%d connections, %d bytes to clients", ps.Accepted, ps.ToClient)
}

// issue12 is figures 9, near and far: astronomers' access patterns, each
// cold on a fresh mount, beside rclone mount and (where it means
// something) curl.
func (b *bench) issue12(t *testing.T, section func(string, func()), nearP, farP *place) {
	var want map[string]string
	for _, e := range []*place{nearP, farP} {
		rclones := []*peer{peerRcloneFull, peerRcloneOff}
		if e == farP {
			rclones = b.sz.farSciRclone
		}
		section(e.name+": figures 9", func() {
			if want == nil {
				var err error
				if want, err = sciLocal(e.st); err != nil {
					t.Fatal(err)
				}
			}
			for _, fig := range []string{figSciCp, figSciScan, figSciInfo, figSciCutout, figSciLs} {
				for i := 0; i < b.sz.sciRuns; i++ {
					peers := []*peer{peerMastfs}
					if fig == figSciInfo { // downloading both files whole first; curl takes 0.2-0.4 s a file near, so 9a has none
						peers = append(peers, peerCurl)
					}
					if i < b.sz.sciRcloneRuns && fig != figSciLs { // rclone's ls -lR is figure 5a
						peers = append(peers, rclones...)
					}
					for _, p := range rotate(peers, i) {
						b.science(e, p, fig, i, want)
					}
				}
			}
		})
	}
}

// issue13 is figures 10, near: CPU per GiB of a cold read, cp -r on a
// fresh mount, and a wholly cached file after a remount, with and without
// passthrough.
func (b *bench) issue13(t *testing.T, section func(string, func()), nearP *place) {
	section("near: figures 10", func() {
		for i := 0; i < b.sz.runs; i++ {
			for _, p := range rotate([]*peer{peerCurl, peerMastfs}, i) {
				b.cpu(nearP, p, i)
			}
		}
		for i := 0; i < b.sz.cpRuns; i++ {
			for _, p := range rotate([]*peer{peerMastfs, peerRcloneOff}, i) {
				b.cpCold(nearP, p, i)
			}
		}
		sum, err := pixelLocal(nearP.st.root)
		if err != nil {
			t.Fatalf("pixel loop on the local file: %v", err)
		}
		b.pixelSum = sum
		defer openFuseDevice(b.book)()
		for i := 0; i < b.sz.runs; i++ {
			for _, p := range rotate([]*peer{peerLocal, peerMastfs, peerMastfsUser}, i) {
				b.remount(nearP, p, i)
			}
		}
	})
}

// probeRcloneDefault records what rclone does against this server without
// --ftp-disable-tls13: a listing and a header read, under a short limit.
func probeRcloneDefault(b *bench, e *place) {
	p := peerRcloneTLS13
	m, err := e.mount(p, "probe")
	if err != nil {
		b.book.note("rclone without --ftp-disable-tls13: mount failed: " + err.Error())
		return
	}
	ls := command{name: "ls", args: []string{"-l", filepath.Join(m.root(), filepath.Dir(largeRel))},
		limit: 30 * time.Second, capture: true}.run()
	head := command{name: "head", args: []string{"-c", "2880", filepath.Join(m.root(), largeRel)},
		limit: 30 * time.Second, capture: true}.run()
	log := m.logText()
	_ = m.unmount()
	res := func(o outcome) string {
		if o.err != nil {
			return "fails after " + o.dur.Round(time.Millisecond).String() + ": " + o.err.Error()
		}
		return fmt.Sprintf("works (%d bytes in %v)", len(o.out), o.dur.Round(time.Millisecond))
	}
	why := ""
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "tls:") {
			why = "; rclone's log: " + lastLines(strings.TrimSpace(line), 1)
			break
		}
	}
	b.book.note(fmt.Sprintf("rclone mount without --ftp-disable-tls13 (TLS 1.3, rclone's default): `ls -l` %s; "+
		"`head -c 2880` %s%s", res(ls), res(head), why))
}

// collectVersions records the machine and the programs compared.
func collectVersions(bk *book) {
	first := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil && len(out) == 0 {
			return "unknown (" + err.Error() + ")"
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := first("awk", "/MemTotal/ {printf \"%.1f GiB\", $2/1048576}", "/proc/meminfo")
	bk.params["date"] = time.Now().UTC().Format("2006-01-02 15:04 UTC")
	bk.params["machine"] = fmt.Sprintf("%s, %d CPUs, %s RAM, Linux %s", cpu, runtime.NumCPU(), mem, first("uname", "-r"))
	bk.params["mastfs"] = first("git", "-C", "..", "describe", "--always", "--dirty") + " (" + first("go", "version") + ")"
	bk.params["rclone"] = first("rclone", "version")
	bk.params["curl"] = first("curl", "--version")
	bk.params["vsftpd"] = first("dpkg-query", "-W", "-f", "${Version}", "vsftpd")
	bk.params["astropy"] = first("/usr/bin/python3", "-c", "import astropy, sys; print(astropy.__version__, 'on Python', sys.version.split()[0])")
}

// sampleLoad records the 1-minute load average every 5 s until stopped:
// the benchmarks share the machine with whatever else runs on it, and a
// busy machine slows every peer (the ratios, taken run by run, less so).
func sampleLoad(bk *book) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var loads []float64
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			if b, err := os.ReadFile("/proc/loadavg"); err == nil {
				var l float64
				if _, err := fmt.Sscan(string(b), &l); err == nil {
					loads = append(loads, l)
				}
			}
			select {
			case <-done:
				m, _, hi := summarize(loads)
				bk.mu.Lock()
				bk.params["load"] = fmt.Sprintf("1-minute load average during the run: median %.1f, max %.1f, on %d CPUs",
					m, hi, runtime.NumCPU())
				bk.mu.Unlock()
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		select {
		case <-done:
		default:
			close(done)
		}
		<-finished
	}
}
