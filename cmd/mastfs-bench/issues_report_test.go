package bench

import (
	"fmt"
	"math"
	"strings"
)

// Figures 9 and 10 in the results: the figure 9 table and the targets of
// issues 12 and 13.

var sciFigs = []string{figSciCp, figSciScan, figSciInfo, figSciCutout, figSciLs}

// rtt is the far place's round trip.
const rtt = 2 * farDelay

// unread is what the server sent that the reader never asked for.
func unread(x sample) int64 { return max(x.Cost.Sent-x.Asked, 0) }

// medianOf is the median of get over a series' successful samples.
func medianOf(s *series, get func(x sample) float64) float64 {
	var v []float64
	for _, x := range s.Samples {
		if x.OK {
			v = append(v, get(x))
		}
	}
	m, _, _ := summarize(v)
	return m
}

// rclonesOf returns the rclone series of one figure at one place.
func rclonesOf(b *book, place, fig string) []*series {
	var out []*series
	for _, name := range []string{"rclone-full", "rclone-off"} {
		if s := b.get(place, fig, name); s != nil {
			out = append(out, s)
		}
	}
	return out
}

// sciTable writes one figure 9 table: time, speed against rclone, round
// trips per unit (far), and the server's cost against what the reader
// asked for.
func sciTable(w *strings.Builder, b *bench, place, fig string) {
	all := b.book.seriesOf(place, fig)
	if len(all) == 0 {
		return
	}
	u := sciUnit[fig]
	units := u.count(&stage{treeDirs: 1 + b.sz.treeDirs + b.sz.treeDirs*b.sz.treeSubdirs})
	fmt.Fprintf(w, "\n#### %s (s, lower is better)\n\n", fig)
	fmt.Fprintf(w, "| peer | median | min | max | runs ok | rclone time / this (best rclone, run by run) | round trips per %s "+
		"| cmds | LIST | RETR | conns opened | max ctrl / data open | sent | asked by the reader | sent, never read |\n", u.name)
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	rclones := rclonesOf(b.book, place, fig)
	if fig == figSciLs {
		rclones = rclonesOf(b.book, place, figLsCold) // the same tree, listed in figure 5a
	}
	for _, s := range all {
		st := s.stats()
		ratio, trips := "–", "–"
		if !strings.HasPrefix(s.Peer, "rclone") && len(rclones) > 0 {
			ratio = spread(speedup(figure{higher: false}, []*series{s}, rclones))
		}
		if place == "far" && units > 0 && !math.IsNaN(st.median) {
			trips = num(st.median / rtt.Seconds() / float64(units))
		}
		c := medianCost(s)
		asked := int64(medianOf(s, func(x sample) float64 { return float64(x.Asked) }))
		never := medianOf(s, func(x sample) float64 { return float64(unread(x)) })
		neverText := "–"
		if !math.IsNaN(never) && fig != figSciLs {
			neverText = bytesText(int64(never))
			if c.Sent > 0 {
				neverText += fmt.Sprintf(" (%.0f%%)", 100*never/float64(c.Sent))
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d/%d | %s | %s | %d | %d | %d | %d | %d / %d | %s | %s | %s |\n",
			s.Peer, num(st.median), num(st.min), num(st.max), st.n, len(s.Samples), ratio, trips,
			c.Commands, c.Lists, c.Retrs, c.Conns, c.MaxCtrl, c.MaxData, bytesText(c.Sent), bytesText(asked), neverText)
	}
	for _, s := range all {
		if st := s.stats(); st.failed > 0 {
			fmt.Fprintf(w, "\n- **%s failed %d of %d runs**: %s\n", s.Peer, st.failed, len(s.Samples), mdEscape(st.firstErr))
		}
	}
}

// sciTargets are issue 12's targets, far away.
func sciTargets(b *bench) []target {
	bk := b.book
	var out []target
	limits := []struct {
		fig   string
		limit float64
	}{{figSciCp, 10}, {figSciScan, 10}, {figSciInfo, 1.5}, {figSciCutout, 0.8}, {figSciLs, 5}}
	for _, l := range limits {
		t := target{Place: "far", Name: fmt.Sprintf("%s ≤ %s s", figTag(l.fig), num(l.limit))}
		s := bk.get("far", l.fig, "mastfs")
		if s == nil || s.stats().n == 0 {
			t.Measured = "not run"
			out = append(out, t)
			continue
		}
		st := s.stats()
		t.Measured = fmt.Sprintf("%s s (%s–%s)", num(st.median), num(st.min), num(st.max))
		t.Pass = passed(st.median <= l.limit)
		if st.median > l.limit {
			t.Gap = fmt.Sprintf("%.0f%% over", 100*(st.median/l.limit-1))
		}
		out = append(out, t)
	}
	for _, fig := range sciFigs[:4] {
		ms := []*series{}
		if s := bk.get("far", fig, "mastfs"); s != nil {
			ms = append(ms, s)
		}
		out = append(out, ratioTarget("far", figTag(fig)+" ≥ 8× rclone mount (best of the modes run)",
			speedup(figure{higher: false}, ms, rclonesOf(bk, "far", fig)), 8, "rclone time/mastfs time", false))
	}
	for _, fig := range sciFigs[:4] {
		t := target{Place: "far", Name: figTag(fig) + ": bytes sent but never read ≤ 10% of bytes sent"}
		s := bk.get("far", fig, "mastfs")
		var v []float64
		if s != nil {
			for _, x := range s.Samples {
				if x.OK && x.Cost.Sent > 0 {
					v = append(v, float64(unread(x))/float64(x.Cost.Sent))
				}
			}
		}
		m, lo, hi := summarize(v)
		if math.IsNaN(m) {
			t.Measured = "not run"
		} else {
			t.Measured = fmt.Sprintf("never read / sent %.0f%% (%.0f–%.0f%%)", 100*m, 100*lo, 100*hi)
			t.Pass = passed(m <= 0.1)
			if m > 0.1 {
				t.Gap = fmt.Sprintf("%.0f points over", 100*(m-0.1))
			}
		}
		out = append(out, t)
	}
	return out
}

// cachedTargets are issue 13's targets, near.
func cachedTargets(b *bench) []target {
	bk := b.book
	get := func(fig, peer string) []*series {
		if s := bk.get("near", fig, peer); s != nil {
			return []*series{s}
		}
		return nil
	}
	tp, tm := figure{higher: true}, figure{higher: false}
	return []target{
		ratioTarget("near", "10a mastfs CPU per GiB ≤ 1.5× curl's", ratios(get(figCPU, "mastfs"), get(figCPU, "curl"), lower),
			1.5, "mastfs/curl", true),
		ratioTarget("near", "10a′ cold sequential ≥ 1.0× curl", speedup(tp, get(figCPURate, "mastfs"), get(figCPURate, "curl")),
			1, "mastfs/curl", false),
		ratioTarget("near", "10b cp -r ≤ 0.5× rclone-off's time", ratios(get(figCpCold, "mastfs"), get(figCpCold, "rclone-off"), lower),
			0.5, "mastfs time/rclone-off time", true),
		ratioTarget("near", "10c cat after a remount, root (passthrough) ≥ 0.95× local",
			speedup(tp, get(figRemountCat, "mastfs"), get(figRemountCat, "local")), 0.95, "mastfs/local", false),
		ratioTarget("near", "10d dd bs=1M after a remount, root (passthrough) ≥ 0.95× local",
			speedup(tp, get(figRemountDD, "mastfs"), get(figRemountDD, "local")), 0.95, "mastfs/local", false),
		ratioTarget("near", "10c cat after a remount, ordinary user: no worse than 6bce053's warm cat (0.33× local)",
			speedup(tp, get(figRemountCat, "mastfs-user"), get(figRemountCat, "local")), 0.33, "mastfs-user/local", false),
		ratioTarget("near", "10d dd bs=1M after a remount, ordinary user: no worse than 6bce053's first warm dd (8.3 of 24 GB/s: 0.35× local)",
			speedup(tp, get(figRemountDD, "mastfs-user"), get(figRemountDD, "local")), 0.35, "mastfs-user/local", false),
		ratioTarget("near", "10e astropy pixel loop, wholly cached, root ≥ 0.9× local speed",
			speedup(tm, get(figPixelLoop, "mastfs"), get(figPixelLoop, "local")), 0.9, "local time/mastfs time", false),
	}
}
