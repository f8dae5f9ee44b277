package bench

import (
	"fmt"
	"math"
	"strings"
)

// target is one of issue 5's targets, as measured.
type target struct {
	Place    string `json:"place"`
	Name     string `json:"target"`
	Measured string `json:"measured"`
	Pass     *bool  `json:"pass"` // nil when not measured
	Gap      string `json:"gap,omitempty"`
}

const chunkSize = 1 << 20 // mastfs's default chunk

// evaluate checks the targets against the book.
func evaluate(b *bench) []target {
	bk := b.book
	var out []target
	get := func(place, fig string, peers ...string) []*series {
		var s []*series
		for _, p := range peers {
			if x := bk.get(place, fig, p); x != nil {
				s = append(s, x)
			}
		}
		return s
	}
	atLeast := func(place, name string, r []float64, floor float64, what string) {
		out = append(out, ratioTarget(place, name, r, floor, what, false))
	}
	tp := figure{higher: true}
	tm := figure{higher: false}
	rclones := []string{"rclone-full", "rclone-off"}

	for _, place := range []string{"near", "far"} {
		ms := func(fig string) []*series { return get(place, fig, "mastfs") }
		if place == "near" {
			atLeast(place, "cold sequential ≥ 0.9× curl", speedup(tp, ms(figCold), get(place, figCold, "curl")), 0.9, "mastfs/curl")
			atLeast(place, "warm ≥ 0.8× local-copy read", speedup(tp, ms(figWarm), get(place, figWarm, "local")), 0.8, "mastfs/local")
		} else {
			atLeast(place, "cold sequential ≥ 2× curl", speedup(tp, ms(figCold), get(place, figCold, "curl")), 2, "mastfs/curl")
		}
		if place == "near" {
			out = append(out, sentTarget(bk.get(place, figHeader, "mastfs")))
		}
		atLeast(place, "header read faster than rclone's (best of full/off)",
			speedup(tm, ms(figHeader), get(place, figHeader, rclones...)), 1.0001, "rclone time/mastfs time")
		if place == "near" {
			atLeast(place, "ls -lR cold no slower than rclone", speedup(tm, ms(figLsCold), get(place, figLsCold, rclones...)),
				1, "rclone time/mastfs time")
		} else {
			atLeast(place, "ls -lR cold ≥ 5× faster than rclone", speedup(tm, ms(figLsCold), get(place, figLsCold, rclones...)),
				5, "rclone time/mastfs time")
		}
		atLeast(place, "8 readers ≥ 2× one reader (--max-conns 4)",
			ratios(ms(figParallel), ms(figOne), higher), 2, "aggregate/one reader")
		if place == "near" {
			out = append(out, rssTarget(bk.get(place, figCold, "mastfs")))
		}
		out = append(out, connsTarget(bk, place), retrTarget(bk.get(place, figCold, "mastfs"), b.sz.large),
			sentOnceTarget(bk.get(place, figCold, "mastfs"), b.sz.large))
		out = append(out, listTarget(b, place))
	}
	out = append(out, sciTargets(b)...)
	out = append(out, cachedTargets(b)...)
	if len(b.only) > 0 {
		// A run of some sections leaves the others' targets unmeasured.
		var measured []target
		for _, t := range out {
			if t.Pass != nil {
				measured = append(measured, t)
			}
		}
		out = measured
	}
	return out
}

// ratioTarget judges the median of run-by-run ratios against a bound: at
// least floor, or with atMost at most it.
func ratioTarget(place, name string, r []float64, bound float64, what string, atMost bool) target {
	t := target{Place: place, Name: name}
	m, _, _ := summarize(r)
	if math.IsNaN(m) {
		t.Measured = "no run where both succeeded"
		return t
	}
	pass := m >= bound
	if atMost {
		pass = m <= bound
	}
	t.Pass = &pass
	t.Measured = what + " " + spread(r)
	switch {
	case pass:
	case atMost:
		t.Gap = fmt.Sprintf("%.0f%% over", 100*(m/bound-1))
	default:
		t.Gap = fmt.Sprintf("%.0f%% short", 100*(1-m/bound))
	}
	return t
}

func passed(ok bool) *bool { return &ok }

func sentTarget(s *series) target {
	t := target{Place: "near", Name: "header read sends at most one chunk (1 MiB)"}
	if s == nil {
		t.Measured = "not run"
		return t
	}
	var v []float64
	for _, x := range s.Samples {
		if x.OK {
			v = append(v, float64(x.Cost.Sent))
		}
	}
	m, lo, hi := summarize(v)
	if math.IsNaN(m) {
		t.Measured = "no successful run"
		return t
	}
	t.Measured = fmt.Sprintf("xferlog: %s (%s–%s)", bytesText(int64(m)), bytesText(int64(lo)), bytesText(int64(hi)))
	t.Pass = passed(hi <= chunkSize)
	if hi > chunkSize {
		t.Gap = fmt.Sprintf("%.1f× a chunk at most", hi/chunkSize)
	}
	return t
}

func rssTarget(s *series) target {
	t := target{Place: "near", Name: "peak RSS < 150 MiB during figure 1"}
	var hi int64
	if s != nil {
		for _, x := range s.Samples {
			hi = max(hi, x.RSS)
		}
	}
	if hi == 0 {
		t.Measured = "not measured"
		return t
	}
	t.Measured = fmt.Sprintf("largest VmHWM %.1f MiB", float64(hi)/(1<<20))
	t.Pass = passed(hi < 150<<20)
	return t
}

// mountOf groups the figures measured on one mount, so that the
// connections a mount opened can be added up over its timed actions.
var mountOf = map[string]string{figCold: "1", figWarm: "1", figHeader: "3", figAstropy: "4",
	figLsCold: "5", figLsWarm: "5", figLsMany: "5", figCp: "5", figOne: "6a", figParallel: "6b",
	figSciCp: "9a", figSciScan: "9b", figSciInfo: "9c", figSciCutout: "9d", figSciLs: "9e",
	figCPU: "10a", figCPURate: "10a", figCpCold: "10b", figRemountCat: "10r", figRemountDD: "10r", figPixelLoop: "10r"}

// connsTarget: mastfs never has more than --max-conns control connections
// open. Two measures: the control connections vsftpd logged as opened,
// added up per mount over its timed actions (at most what can be open at
// once, since every mount starts with none); and the most open at once
// seen by polling the server's sockets, which can miss a short peak.
func connsTarget(bk *book, place string) target {
	t := target{Place: place, Name: "mastfs never above --max-conns (4) control connections"}
	opened := map[string]int{}
	polled, n := 0, 0
	for _, s := range bk.all {
		if s.Place != place || !strings.HasPrefix(s.Peer, "mastfs") {
			continue
		}
		for _, x := range s.Samples {
			opened[fmt.Sprintf("%s/%s/%d", s.Peer, mountOf[s.Fig], x.Run)] += x.Cost.Conns
			polled = max(polled, x.Cost.MaxCtrl)
			n++
		}
	}
	if n == 0 {
		t.Measured = "not run"
		return t
	}
	most := 0
	for _, c := range opened {
		most = max(most, c)
	}
	t.Measured = fmt.Sprintf("opened per mount (vsftpd log): at most %d over %d mounts; open at once (polled every 20 ms): at most %d",
		most, len(opened), polled)
	if bk.params["conn_poll"] != "dedup" {
		// Results from before the poll counted each socket once: a socket
		// could be counted twice, so only the log is judged.
		t.Measured += " (this run's poll counted some sockets twice: judged on the log alone)"
		polled = 0
	}
	t.Pass = passed(most <= 4 && polled <= 4)
	return t
}

// retrTarget: a cold cat uses one RETR per stream (or segment), not one
// per chunk.
func retrTarget(s *series, size int64) target {
	t := target{Name: "cold cat: one RETR per stream or segment, not per chunk"}
	if s == nil {
		t.Measured = "not run"
		return t
	}
	t.Place = s.Place
	chunks := float64((size + chunkSize - 1) / chunkSize)
	var v []float64
	for _, x := range s.Samples {
		v = append(v, float64(x.Cost.Retrs))
	}
	m, lo, hi := summarize(v)
	t.Measured = fmt.Sprintf("RETR per cold cat: %s (%s–%s) for %.0f chunks", num(m), num(lo), num(hi), chunks)
	t.Pass = passed(hi*8 <= chunks) // at least 8 chunks a RETR on average
	return t
}

// sentOnceTarget: a cold cat makes the server send each byte about once.
func sentOnceTarget(s *series, size int64) target {
	t := target{Name: "(server cost) cold cat: server sends ≤ 1.05× the file"}
	if s == nil {
		t.Measured = "not run"
		return t
	}
	t.Place = s.Place
	var v []float64
	for _, x := range s.Samples {
		if x.OK {
			v = append(v, float64(x.Cost.Sent)/float64(size))
		}
	}
	m, lo, hi := summarize(v)
	if math.IsNaN(m) {
		t.Measured = "no successful run"
		return t
	}
	t.Measured = fmt.Sprintf("sent/size %.2f× (%.2f–%.2f)", m, lo, hi)
	t.Pass = passed(m <= 1.05)
	if m > 1.05 {
		t.Gap = fmt.Sprintf("%.0f%% more than the file", 100*(m-1))
	}
	return t
}

// listTarget: ls -lR sends one listing per directory, and none warm.
func listTarget(b *bench, place string) target {
	t := target{Place: place, Name: "ls -lR: one LIST per directory cold, none warm (TTL 5 min)"}
	cold, warm := b.book.get(place, figLsCold, "mastfs"), b.book.get(place, figLsWarm, "mastfs")
	if cold == nil {
		t.Measured = "not run"
		return t
	}
	// The tree's directories, and the mount's root to find the tree in.
	want := b.sz.treeDirs*b.sz.treeSubdirs + b.sz.treeDirs + 1 + 1
	hiCold, hiWarm := 0, 0
	for _, x := range cold.Samples {
		hiCold = max(hiCold, x.Cost.Lists)
	}
	if warm != nil {
		for _, x := range warm.Samples {
			hiWarm = max(hiWarm, x.Cost.Lists)
		}
	}
	t.Measured = fmt.Sprintf("LIST cold: at most %d for %d directories (the tree and the mount's root); warm: at most %d", hiCold, want, hiWarm)
	t.Pass = passed(hiCold <= want && hiWarm == 0)
	return t
}
