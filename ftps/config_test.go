package ftps

import (
	"crypto/tls"
	"errors"
	"testing"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		port int
		mode TLSMode
		dir  string
		err  error
	}{
		{in: "archive.stsci.edu", host: "archive.stsci.edu"},
		{in: "archive.stsci.edu:2121", host: "archive.stsci.edu", port: 2121},
		{in: "ftps://archive.stsci.edu", host: "archive.stsci.edu", mode: Implicit},
		{in: "ftp://archive.stsci.edu/stage/anonymous", host: "archive.stsci.edu", dir: "/stage/anonymous"},
		{in: "ftpes://127.0.0.1:21", host: "127.0.0.1", port: 21},
		{in: "[::1]:990", host: "::1", port: 990},
		{in: "sftp://archive.stsci.edu", err: ErrSFTP},
		{in: "SFTP://archive.stsci.edu", err: ErrSFTP},
	} {
		host, port, mode, dir, err := ParseAddress(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("ParseAddress(%q) err = %v, want %v", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || host != tc.host || port != tc.port || mode != tc.mode || dir != tc.dir {
			t.Errorf("ParseAddress(%q) = %q %d %v %q %v", tc.in, host, port, mode, dir, err)
		}
	}
	for _, bad := range []string{"", "gopher://x", "ftp://user:pw@host", "host:99999", "ftp:///x"} {
		if _, _, _, _, err := ParseAddress(bad); err == nil {
			t.Errorf("ParseAddress(%q) accepted", bad)
		}
	}
}

func TestCheckPathRefusesInjection(t *testing.T) {
	for _, p := range []string{"a\r\nDELE b", "a\nb", "a\x00b"} {
		if err := checkPath(p); !errors.Is(err, ErrBadName) {
			t.Errorf("checkPath(%q) = %v", p, err)
		}
	}
	if err := checkPath("/anonymous/with space/ünï.fits"); err != nil {
		t.Error(err)
	}
}

func TestKeyExchangesFrom(t *testing.T) {
	for _, tc := range []struct {
		chosen tls.CurveID
		first  tls.CurveID // 0: crypto/tls's defaults
		n      int
	}{
		{0, 0, 0},
		{tls.CurveID(0xfafa), 0, 0},
		{tls.X25519MLKEM768, tls.X25519MLKEM768, 7},
		{tls.X25519, tls.X25519, 4},
		{tls.CurveP256, tls.CurveP256, 3},
		{tls.CurveP521, tls.CurveP521, 1},
	} {
		got := keyExchangesFrom(tc.chosen)
		if len(got) != tc.n || (tc.n > 0 && got[0] != tc.first) {
			t.Errorf("keyExchangesFrom(%v) = %v", tc.chosen, got)
		}
	}
}
