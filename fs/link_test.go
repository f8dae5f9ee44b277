package fs

import "testing"

func TestLocalTarget(t *testing.T) {
	for _, tc := range []struct {
		root, link, target string
		want               string
		ok                 bool
	}{
		{"/", "/a/b/latest.fits", "with space.fits", "with space.fits", true},
		{"/", "/a/b/l", "../c/x.fits", "../c/x.fits", true},
		{"/", "/a/b/l", "/a/c/x.fits", "../c/x.fits", true},
		{"/", "/l", "/a/x", "a/x", true},
		{"/a", "/a/l", "/a/b/x", "b/x", true},
		{"/a", "/a/l", "../etc/passwd", "", false},
		{"/a", "/a/b/l", "/etc/passwd", "", false},
		{"/a", "/a/b/l", "../../../../x", "", false},
		{"/a", "/a/b/l", "", "", false},
		{"/a", "/a/b/l", "x\x00y", "", false},
		{"/", "/a/l", "/", "..", true},
		{"/a", "/a/b/l", "/a", "..", true},
	} {
		got, ok := localTarget(tc.root, tc.link, tc.target)
		if got != tc.want || ok != tc.ok {
			t.Errorf("localTarget(%q, %q, %q) = %q, %v; want %q, %v", tc.root, tc.link, tc.target, got, ok, tc.want, tc.ok)
		}
	}
}
