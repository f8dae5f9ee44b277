package ftps

import (
	"strings"
	"testing"
	"time"

	"mastfs/fs/stage"
)

// checkInvariants fails t if any entry could not have come from a sound
// parse: every name passes CheckName, sizes are not negative, links and only
// links carry a target, and the count of entries and errors is bounded by
// the count of lines.
func checkInvariants(t *testing.T, data []byte, entries []stage.Entry, errs []error) {
	t.Helper()
	lines := strings.Count(string(data), "\n") + 1
	if len(entries)+len(errs) > lines {
		t.Fatalf("%d entries and %d errors from %d lines", len(entries), len(errs), lines)
	}
	for _, e := range entries {
		if err := CheckName(e.Name); err != nil {
			t.Errorf("entry %+v: %v", e, err)
		}
		if e.Size < 0 {
			t.Errorf("entry %+v: negative size", e)
		}
		if e.Type != stage.Link && e.Target != "" {
			t.Errorf("entry %+v: type %v with target %q", e, e.Type, e.Target)
		}
		if e.Type != stage.File && e.Type != stage.Dir && e.Type != stage.Link {
			t.Errorf("entry %+v: unknown type", e)
		}
		if strings.ContainsAny(e.Target, "\x00\r\n") {
			t.Errorf("entry %+v: target holds NUL, CR or LF", e)
		}
	}
	for _, err := range errs {
		if err == nil {
			t.Errorf("nil error in %v", errs)
		}
	}
}

func FuzzParseList(f *testing.F) {
	for _, tc := range listCases {
		f.Add([]byte(tc.body), tc.now.Unix())
		for line := range strings.Lines(tc.body) {
			f.Add([]byte(line), listNow.Unix())
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, now int64) {
		entries, errs := ParseList(data, time.Unix(now, 0))
		checkInvariants(t, data, entries, errs)
	})
}

func FuzzParseMLSD(f *testing.F) {
	for _, tc := range mlsdCases {
		f.Add([]byte(tc.body))
		for line := range strings.Lines(tc.body) {
			f.Add([]byte(line))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, errs := ParseMLSD(data)
		checkInvariants(t, data, entries, errs)
	})
}
