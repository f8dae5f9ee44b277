package bench

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// sectionNames are the sections TestBench runs, in order, for
// MASTFS_BENCH_ONLY.
var sectionNames = []string{"near: figures 1, 2, 7", "near: figure 3", "near: figure 4", "near: figure 5",
	"near: figure 6", "far: figure 1", "far: figure 3", "far: figure 5 (ls -lR cold)", "far: figure 6",
	"near: figures 9", "far: figures 9", "near: figures 10"}

// parseOnly reads MASTFS_BENCH_ONLY: sections separated by ";", each a
// whole name ("far: figures 9") or a name without its place ("figures 9":
// both places).
func parseOnly(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ";") {
		if f = strings.Join(strings.Fields(f), " "); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// runs says whether the section named runs in this benchmark.
func (b *bench) runs(name string) bool {
	if len(b.only) == 0 {
		return true
	}
	_, bare, _ := strings.Cut(name, ": ")
	for _, o := range b.only {
		if o == name || o == bare {
			return true
		}
	}
	return false
}

// TestOnly checks how MASTFS_BENCH_ONLY picks sections; it runs in make
// test, unlike the benchmark.
func TestOnly(t *testing.T) {
	for _, c := range []struct {
		only string
		want []string
	}{
		{"", sectionNames},
		{"far: figures 9", []string{"far: figures 9"}},
		{"figures 9", []string{"near: figures 9", "far: figures 9"}},
		{" far:  figures 9 ; near: figures 10;", []string{"far: figures 9", "near: figures 10"}},
		{"near: figures 1", nil}, // not a prefix of "near: figures 10", nor a section
		{"figure 1", []string{"far: figure 1"}},
	} {
		b := &bench{only: parseOnly(c.only)}
		var got []string
		for _, n := range sectionNames {
			if b.runs(n) {
				got = append(got, n)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("MASTFS_BENCH_ONLY=%q runs %q, want %q", c.only, got, c.want)
		}
	}
}

// TestCPUTime checks the /proc reading behind figure 10a on this process,
// which has burnt some CPU by now, and on a process that does not exist.
func TestCPUTime(t *testing.T) {
	deadline := time.Now().Add(time.Minute)
	for cpuTime(os.Getpid()) <= 0 && time.Now().Before(deadline) {
		_ = strings.Repeat("x", 1<<16) // burn a tick
	}
	if c := cpuTime(os.Getpid()); c <= 0 {
		t.Errorf("cpuTime of this process = %v, want more than 0", c)
	}
	if c := cpuTime(1 << 30); c != -1 {
		t.Errorf("cpuTime of no process = %v, want -1", c)
	}
}

// TestRatioTarget checks both bounds and the gap's wording.
func TestRatioTarget(t *testing.T) {
	for _, c := range []struct {
		r      []float64
		bound  float64
		atMost bool
		pass   bool
		gap    string
	}{
		{[]float64{2, 3, 4}, 2, false, true, ""},
		{[]float64{1, 1, 1}, 2, false, false, "50% short"},
		{[]float64{3, 3}, 1.5, true, false, "100% over"},
		{[]float64{1}, 1.5, true, true, ""},
	} {
		got := ratioTarget("near", "x", c.r, c.bound, "a/b", c.atMost)
		if got.Pass == nil || *got.Pass != c.pass || got.Gap != c.gap {
			t.Errorf("ratioTarget(%v, %v, atMost %v) = %+v, want pass %v gap %q", c.r, c.bound, c.atMost, got, c.pass, c.gap)
		}
	}
	if got := ratioTarget("near", "x", nil, 1, "a/b", false); got.Pass != nil {
		t.Errorf("ratioTarget of no runs judged: %+v", got)
	}
}
