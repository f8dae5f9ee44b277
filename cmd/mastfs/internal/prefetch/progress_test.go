package prefetch

import (
	"strings"
	"testing"
)

func TestRenderBar(t *testing.T) {
	for _, tc := range []struct {
		done, total int64
		rate        float64
		width       int
		want        string
	}{
		{0, 100 << 20, 0, 100, "[>" + strings.Repeat(" ", 35) + "]   0% 0 B / 100.0 MiB  0 B/s  ETA --  0/4 files"},
		{50 << 20, 100 << 20, 10 << 20, 100, "[" + strings.Repeat("=", 18) + ">" + strings.Repeat(" ", 17) + "]  50% 50.0 MiB / 100.0 MiB  10.0 MiB/s  ETA 5s  2/4 files"},
		{100 << 20, 100 << 20, 10 << 20, 100, "[" + strings.Repeat("=", 36) + "] 100% 100.0 MiB / 100.0 MiB  10.0 MiB/s  ETA 0s  4/4 files"},
		{50 << 20, 100 << 20, 10 << 20, 40, " 50% 50.0 MiB / 100.0 MiB  10.0 MiB/s  ETA 5s  2/4 files"},
	} {
		files := int(4 * tc.done / tc.total)
		got := renderBar(tc.done, tc.total, tc.rate, files, 4, tc.width)
		if got != tc.want {
			t.Errorf("renderBar(%d/%d, width %d):\n got %q\nwant %q", tc.done, tc.total, tc.width, got, tc.want)
		}
		if len(got) >= max(tc.width, len(tc.want)+1) {
			t.Errorf("bar of %d columns for a width of %d", len(got), tc.width)
		}
	}
}
