package bench

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// panels are the chart's small multiples: one figure at one place each.
var panels = []struct {
	place, fig, title string
}{
	{"near", figCold, "near 1: cold read of the large file, MB/s"},
	{"near", figWarm, "near 2: warm read, MB/s"},
	{"near", figHeader, "near 3: header read, ms"},
	{"near", figAstropy, "near 4: astropy card + pixel, ms"},
	{"near", figLsCold, "near 5a: ls -lR tree cold, s"},
	{"near", figCp, "near 5d: cp -r small files, s"},
	{"near", figParallel, "near 6b: 8 readers, MB/s"},
	{"far", figCold, "far 1: cold read, MB/s"},
	{"far", figHeader, "far 3: header read, ms"},
	{"far", figLsCold, "far 5a: ls -lR tree cold, s"},
	{"far", figOne, "far 6a: one reader, MB/s"},
	{"far", figParallel, "far 6b: 8 readers, MB/s"},
}

// drawChart writes results.png with gnuplot: a bar per peer with its
// median, and a line from min to max. A peer that failed every run shows
// as an empty slot named "(failed)".
func drawChart(b *bench, dir string) error {
	if _, err := exec.LookPath("gnuplot"); err != nil {
		return errors.New("gnuplot not installed (cmd/mastfs-bench/deps.sh installs gnuplot-nox)")
	}
	tmp, err := os.MkdirTemp("", "mastfs-chart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var script strings.Builder
	out, err := filepath.Abs(filepath.Join(dir, "results.png"))
	if err != nil {
		return err
	}
	fmt.Fprintf(&script, "set terminal pngcairo size 1800,1200 font 'sans,10'\nset output '%s'\n", out)
	fmt.Fprintf(&script, "set multiplot layout 3,4 title 'mastfs vs rclone mount vs curl (%s run, %s): median, min–max'\n",
		b.sz.name, b.book.params["date"])
	script.WriteString("set style fill solid 0.7 border -1\nset boxwidth 0.6\nset yrange [0:*]\nset xtics rotate by -25 nomirror\n" +
		"set grid ytics\nunset key\nset offsets 0.5, 0.5, 0, 0\n")
	colors := map[string]string{"curl": "#888888", "local": "#bbbbbb", "mastfs": "#1f77b4", "mastfs-1s": "#6baed6",
		"rclone-full": "#d62728", "rclone-off": "#ff9896"}
	for i, pn := range panels {
		ss := b.book.seriesOf(pn.place, pn.fig)
		data := filepath.Join(tmp, fmt.Sprintf("p%02d.dat", i))
		var d strings.Builder
		for _, s := range ss {
			st := s.stats()
			label, m, lo, hi := s.Peer, st.median, st.min, st.max
			switch {
			case math.IsNaN(m):
				label, m, lo, hi = s.Peer+" (failed)", 0, 0, 0
			case st.failed > 0:
				label = fmt.Sprintf("%s (%d/%d failed)", s.Peer, st.failed, len(s.Samples))
			}
			color := colors[s.Peer]
			if color == "" {
				color = "#444444"
			}
			rgb, _ := strconv.ParseInt(strings.TrimPrefix(color, "#"), 16, 32)
			fmt.Fprintf(&d, "\"%s\" %g %g %g %d\n", label, m, lo, hi, rgb)
		}
		if len(ss) == 0 {
			d.WriteString("\"not run\" 0 0 0 4473924\n")
		}
		if err := os.WriteFile(data, []byte(d.String()), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(&script, "set title \"%s\"\n", pn.title)
		fmt.Fprintf(&script, "plot '%s' using 0:2:5:xtic(1) with boxes lc rgb variable, '' using 0:2:3:4 with yerrorbars lc rgb 'black' pt 0\n", data)
	}
	script.WriteString("unset multiplot\n")
	sp := filepath.Join(tmp, "chart.gp")
	if err := os.WriteFile(sp, []byte(script.String()), 0o644); err != nil {
		return err
	}
	if msg, err := exec.Command("gnuplot", sp).CombinedOutput(); err != nil {
		return fmt.Errorf("gnuplot: %v: %s", err, strings.TrimSpace(string(msg)))
	}
	return nil
}
