package mountinfo

import (
	"os"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	line := `1042 29 0:87 / /tmp/my\040stage rw,nosuid,nodev,relatime shared:600 - fuse.mastfs mastfs:anonymous@archive.stsci.edu/anonymous/a1 ro,user_id=0,group_id=0`
	got, ok := Parse(line)
	want := Mount{Point: "/tmp/my stage", Type: "fuse.mastfs", Source: "mastfs:anonymous@archive.stsci.edu/anonymous/a1",
		SuperOptions: "ro,user_id=0,group_id=0"}
	if !ok || got != want {
		t.Fatalf("Parse = %+v, %v; want %+v", got, ok, want)
	}
	for _, bad := range []string{"", "1 2 3", "36 35 98:0 /root /point opts shared:1"} {
		if m, ok := Parse(bad); ok {
			t.Errorf("Parse(%q) = %+v, want no mount", bad, m)
		}
	}
	all, err := parseAll(strings.NewReader(line + "\nshort line\n" + line + "\n"))
	if err != nil || len(all) != 2 {
		t.Errorf("parseAll: %d mounts, %v; want 2", len(all), err)
	}
}

func TestHolding(t *testing.T) {
	mounts := []Mount{{Point: "/tmp/a"}, {Point: "/tmp/a/b"}, {Point: "/"}}
	for p, want := range map[string]string{"/tmp/a/b/c": "/tmp/a/b", "/tmp/a/bc": "/tmp/a", "/tmp/a": "/tmp/a", "/x": "/"} {
		if m, ok := Holding(mounts, p); !ok || m.Point != want {
			t.Errorf("Holding(%s) = %q, want %q", p, m.Point, want)
		}
	}
	if m, ok := Holding([]Mount{{Point: "/tmp/a"}}, "/tmp"); ok {
		t.Errorf("Holding(/tmp) = %+v, want none", m)
	}
}

// TestRead reads this machine's table, which always has its root.
func TestRead(t *testing.T) {
	if _, err := os.Stat(table); err != nil {
		t.Skipf("no %s on this system", table)
	}
	if !Mounted("/") {
		all, err := Read()
		t.Fatalf("/ is not in the mount table: %v, %+v", err, all)
	}
}
