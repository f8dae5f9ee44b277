package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// figure says how a figure is shown: which peers, against what reference.
type figure struct {
	fig    string
	higher bool   // higher values are better (throughput); else lower (time)
	ref    string // peer the "× ref" column compares with; "" for none
	refFig string // figure the reference comes from; "" for fig itself
}

var figures = []figure{
	{figCold, true, "curl", ""},
	{figWarm, true, "local", ""},
	{figHeader, false, "curl", ""},
	{figAstropy, false, "local", ""},
	{figLsCold, false, "mastfs", ""},
	{figLsWarm, false, "mastfs", ""},
	{figLsMany, false, "mastfs", ""},
	{figCp, false, "mastfs", ""},
	{figOne, true, "curl", ""},
	{figParallel, true, "", figOne}, // each peer against its own one reader
	{figCPU, false, "curl", ""},
	{figCPURate, true, "curl", ""},
	{figCpCold, false, "mastfs", ""},
	{figRemountCat, true, "local", ""},
	{figRemountDD, true, "local", ""},
	{figPixelLoop, false, "local", ""},
}

var peerOrder = []string{"curl", "local", "mastfs", "mastfs-1s", "mastfs-user", "rclone-full", "rclone-off"}

func peerRank(name string) int {
	if i := slices.Index(peerOrder, name); i >= 0 {
		return i
	}
	return len(peerOrder)
}

// num formats a value with three significant digits or so.
func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func spread(vals []float64) string {
	m, lo, hi := summarize(vals)
	if math.IsNaN(m) {
		return "–"
	}
	return fmt.Sprintf("%s× (%s–%s)", num(m), num(lo), num(hi))
}

// speedup is how many times better num is than den, run by run.
func speedup(f figure, nums, dens []*series) []float64 {
	better := higher
	if !f.higher {
		better = lower
	}
	r := ratios(nums, dens, better)
	if !f.higher {
		for i := range r {
			r[i] = 1 / r[i]
		}
	}
	return r
}

// medianCost is the median of each cost counter over the successful runs
// (over all runs when none succeeded), and the largest connection counts.
func medianCost(s *series) cost {
	var picked []sample
	for _, x := range s.Samples {
		if x.OK {
			picked = append(picked, x)
		}
	}
	if len(picked) == 0 {
		picked = s.Samples
	}
	med := func(get func(c cost) float64) float64 {
		var v []float64
		for _, x := range picked {
			v = append(v, get(x.Cost))
		}
		m, _, _ := summarize(v)
		return m
	}
	c := cost{
		Commands: int(med(func(c cost) float64 { return float64(c.Commands) })),
		Lists:    int(med(func(c cost) float64 { return float64(c.Lists) })),
		Retrs:    int(med(func(c cost) float64 { return float64(c.Retrs) })),
		Stats:    int(med(func(c cost) float64 { return float64(c.Stats) })),
		Conns:    int(med(func(c cost) float64 { return float64(c.Conns) })),
		Sent:     int64(med(func(c cost) float64 { return float64(c.Sent) })),
	}
	for _, x := range s.Samples {
		c.MaxCtrl, c.MaxData = max(c.MaxCtrl, x.Cost.MaxCtrl), max(c.MaxData, x.Cost.MaxData)
	}
	return c
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// seriesOf returns the series of one figure at one place, in peer order.
func (b *book) seriesOf(place, fig string) []*series {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*series
	for _, s := range b.all {
		if s.Place == place && s.Fig == fig {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return peerRank(out[i].Peer) < peerRank(out[j].Peer) })
	return out
}

// figureTable writes one figure's table: values, speed against the
// reference, and what each peer cost the server (figure 8).
func figureTable(w *strings.Builder, b *book, place string, f figure) {
	all := b.seriesOf(place, f.fig)
	if len(all) == 0 {
		return
	}
	unit := all[0].Unit
	refName := f.ref
	if f.refFig != "" {
		refName = "one reader"
	}
	fmt.Fprintf(w, "\n#### %s (%s, %s is better)\n\n", f.fig, unit, map[bool]string{true: "higher", false: "lower"}[f.higher])
	fmt.Fprintf(w, "| peer | median | min | max | runs ok | × %s (median, min–max) | cmds | LIST | RETR | SIZE/MDTM | conns opened | max ctrl / data open | sent |\n", refName)
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range all {
		st := s.stats()
		ratio := "–"
		switch {
		case f.refFig != "":
			if one := b.get(place, f.refFig, s.Peer); one != nil {
				ratio = spread(ratios([]*series{s}, []*series{one}, higher))
			}
		case f.ref != "" && f.ref != s.Peer:
			if ref := b.get(place, f.fig, f.ref); ref != nil {
				ratio = spread(speedup(f, []*series{s}, []*series{ref}))
			}
		}
		c := medianCost(s)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d/%d | %s | %d | %d | %d | %d | %d | %d / %d | %s |\n",
			s.Peer, num(st.median), num(st.min), num(st.max), st.n, len(s.Samples), ratio,
			c.Commands, c.Lists, c.Retrs, c.Stats, c.Conns, c.MaxCtrl, c.MaxData, bytesText(c.Sent))
	}
	for _, s := range all {
		if st := s.stats(); st.failed > 0 {
			fmt.Fprintf(w, "\n- **%s failed %d of %d runs**: %s\n", s.Peer, st.failed, len(s.Samples), mdEscape(st.firstErr))
		}
	}
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 700 {
		s = s[:700] + "…"
	}
	return s
}

// rssTable is figure 7: peak RSS of each FUSE server during figure 1.
func rssTable(w *strings.Builder, b *book, place string) {
	if len(b.seriesOf(place, figCold)) == 0 {
		return
	}
	fmt.Fprintf(w, "\n#### 7 peak RSS of the FUSE server during figure 1 (VmHWM, MiB)\n\n")
	fmt.Fprintf(w, "| peer | median | min | max |\n|---|---|---|---|\n")
	for _, s := range b.seriesOf(place, figCold) {
		var v []float64
		for _, x := range s.Samples {
			if x.RSS > 0 {
				v = append(v, float64(x.RSS)/(1<<20))
			}
		}
		if len(v) == 0 {
			continue
		}
		m, lo, hi := summarize(v)
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", s.Peer, num(m), num(lo), num(hi))
	}
}

// writeResults writes results.md, results.json and results.png into dir.
func writeResults(b *bench, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	bk := b.book
	discountWarm(bk)
	targets := evaluate(b)
	raw, err := json.MarshalIndent(struct {
		Params  map[string]string `json:"params"`
		Notes   []string          `json:"notes"`
		Targets []target          `json:"targets"`
		Series  []*series         `json:"series"`
	}{bk.params, bk.notes, targets, bk.all}, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), raw, 0o644); err != nil {
		return err
	}
	chartErr := drawChart(b, dir)

	var w strings.Builder
	fmt.Fprintf(&w, "# mastfs side by side with rclone mount and curl (%s run)\n\n", b.sz.name)
	fmt.Fprintf(&w, "Made by `make bench` (cmd/mastfs-bench/). Every figure is the median of its runs with min and max; ratios are taken run by run.\n\n")
	for _, k := range []string{"date", "machine", "mastfs", "rclone", "curl", "vsftpd", "astropy", "stage", "only", "duration", "load", "proxy"} {
		if v, ok := bk.params[k]; ok {
			fmt.Fprintf(&w, "- **%s**: %s\n", k, mdEscape(v))
		}
	}
	fmt.Fprintf(&w, "- **runs**: each table's \"runs ok\" column gives them: near %d (cp -r %d, the slowest); far away fewer "+
		"where one run takes minutes (rclone's far ls -lR sends one MDTM per file, and as its listing does not depend on the "+
		"cache mode only rclone-off runs it, once)\n", b.sz.runs, b.sz.cpRuns)
	fmt.Fprintf(&w, "- **near**: vsftpd on 127.0.0.1, explicit FTPS (TLS 1.3), loopback\n")
	fmt.Fprintf(&w, "- **far**: the same stage from a second vsftpd announcing %s, through the delay proxy "+
		"(%v each way, %d MiB window per connection and direction)\n", farHost, farDelay, farWindow>>20)
	fmt.Fprintf(&w, "\nPeers:\n\n")
	for _, p := range []*peer{peerCurl, peerLocal, peerMastfs, peerMastfs1, peerMastfsUser, peerRcloneFull, peerRcloneOff} {
		fmt.Fprintf(&w, "- `%s`: %s\n", p.name, p.note)
	}
	fmt.Fprintf(&w, "\nEvery mount is fresh (empty cache, no page cache) for each cold figure. Reads through mounts are checked: "+
		"whole files by sha256 against the stage record after the timed read, headers and copies byte for byte, listings by "+
		"file count and total size, astropy's card and pixel against the same script on the local file (rclone-off far away is not read twice).\n")
	fmt.Fprintf(&w, "Server cost columns (figure 8) come from vsftpd's own protocol log and xferlog for the timed action "+
		"(for figures 3 and 4 until the unmount, since a stream cut short is logged when it closes): commands, LIST, RETR, "+
		"SIZE/MDTM, control connections opened; the most control and data connections open at once come from the server's sockets; "+
		"sent is what xferlog says was sent.\n")
	fmt.Fprintf(&w, "Figures 9 (issue 12) run on the science stage (%s: 500 small products, an HST flt of 7 HDUs and a JWST cal "+
		"of 9), each cold on a fresh mount and metered until its unmount, so that what is fetched ahead and never read is counted. "+
		"Times of the astropy figures are the Python loop's own, without the interpreter's start. \"asked by the reader\" is the "+
		"reader's own count: the sizes of the files cp or curl read whole; in the astropy figures the growth of the process's "+
		"rchar (/proc/self/io) over the loop, plus, for the cutout, its 40,000 pixel bytes touched through the memory map. "+
		"\"sent, never read\" is xferlog's bytes sent minus that. Round trips per unit, far away, are the time over %v per file, "+
		"HDU, cutout or directory. curl runs where it means something: one process downloading both big files whole over one connection (9c); "+
		"it is left out of 9a, where it takes 0.2-0.4 s a file near (one process, one connection, 200 URLs: 88 s in a trial) "+
		"and about 2.8 s a file far (figure 3).\n", sciRel, rtt)
	fmt.Fprintf(&w, "Figures 10 (issue 13), near: 10a is the FUSE server's user+system time (/proc/PID/stat) from just before a "+
		"cold `cat` of the large file until the server's logs settle after it, per GiB, against curl's own (rusage) for the same "+
		"file; 10b is `cp -r` of the small-file directory on a fresh mount; 10c-10e read the large file wholly cached, after a first "+
		"mount read it whole (checked by sha256) and was unmounted and the same cache mounted again: `cat`, then `dd bs=1M`, then "+
		"an astropy memmap loop summing every pixel (checked against the local file), timed once the file has been looked up, beside the same on the local file in the "+
		"page cache. mastfs-user is the ordinary user's path: the mount and its readers run as nobody.\n")

	fmt.Fprintf(&w, "\n## Targets\n\n| place | target | measured | result |\n|---|---|---|---|\n")
	for _, t := range targets {
		res := "not measured"
		if t.Pass != nil {
			res = map[bool]string{true: "**pass**", false: "**FAIL**"}[*t.Pass]
			if t.Gap != "" {
				res += " (" + t.Gap + ")"
			}
		}
		fmt.Fprintf(&w, "| %s | %s | %s | %s |\n", t.Place, t.Name, mdEscape(t.Measured), res)
	}
	if chartErr == nil {
		fmt.Fprintf(&w, "\n![chart](results.png)\n")
	} else {
		fmt.Fprintf(&w, "\n(no chart: %s)\n", mdEscape(chartErr.Error()))
	}
	for _, place := range []string{"near", "far"} {
		fmt.Fprintf(&w, "\n## %s\n", map[string]string{"near": "Near: loopback", "far": "Far away: through the delay proxy"}[place])
		for _, f := range figures {
			figureTable(&w, bk, place, f)
		}
		for _, fig := range sciFigs {
			sciTable(&w, b, place, fig)
		}
		rssTable(&w, bk, place)
	}
	if len(bk.notes) > 0 {
		fmt.Fprintf(&w, "\n## Notes from the run\n\n")
		for _, n := range bk.notes {
			fmt.Fprintf(&w, "- %s\n", mdEscape(n))
		}
	}
	return os.WriteFile(filepath.Join(dir, "results.md"), []byte(w.String()), 0o644)
}

// discountWarm marks as failed a warm read that followed a failed cold
// read on the same mount: it was no warm read.
func discountWarm(bk *book) {
	for _, s := range bk.all {
		if s.Fig != figWarm {
			continue
		}
		cold := bk.find(s.Place, figCold, s.Peer)
		if cold == nil {
			continue
		}
		failed := map[int]bool{}
		for _, x := range cold.Samples {
			failed[x.Run] = !x.OK
		}
		for i := range s.Samples {
			if x := &s.Samples[i]; x.OK && failed[x.Run] {
				x.OK, x.Err = false, "not a warm read: the cold read before it failed"
			}
		}
	}
}

// TestBenchReport writes results.md and results.png again from
// results.json, after a change to how results are shown:
//
//	MASTFS_BENCH_REPORT=full go test -run TestBenchReport ./cmd/mastfs-bench/
func TestBenchReport(t *testing.T) {
	var sz sizes
	switch os.Getenv("MASTFS_BENCH_REPORT") {
	case "":
		t.Skip("set MASTFS_BENCH_REPORT=full or quick to redraw the results")
	case "quick":
		sz = quickSizes
	default:
		sz = fullSizes
	}
	raw, err := os.ReadFile(filepath.Join(sz.out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var saved struct {
		Params map[string]string `json:"params"`
		Notes  []string          `json:"notes"`
		Series []*series         `json:"series"`
	}
	if err := json.Unmarshal(raw, &saved); err != nil {
		t.Fatal(err)
	}
	bk := &book{params: saved.Params, notes: saved.Notes, all: saved.Series}
	if err := writeResults(&bench{sz: sz, book: bk, logf: t.Logf}, sz.out); err != nil {
		t.Fatal(err)
	}
}
