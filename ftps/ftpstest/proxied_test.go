package ftpstest

import (
	"bytes"
	"net"
	"path"
	"strconv"
	"testing"

	"mastfs/ftps/ftpstest/netproxy"
	"mastfs/ftps/stagegen"
)

// TestBehindProxyPortTaken: when a port the proxy needs is taken on
// ProxyHost, though free where the server listens, StartBehindProxy starts
// over on other ports, and the proxy it returns carries a listing.
func TestBehindProxyPortTaken(t *testing.T) {
	st := NewStage(t, stagegen.StageOptions{ManyFiles: -1, LargeSize: 1 << 20})
	pick := pickPorts
	t.Cleanup(func() { pickPorts = pick })
	base, err := pick(20)
	if err != nil {
		t.Fatal(err)
	}
	taken := base + 5 // in the passive range, which vsftpd binds only on demand
	l, err := net.Listen("tcp", net.JoinHostPort(ProxyHost, strconv.Itoa(taken)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	picks := 0
	pickPorts = func(n int) (int, error) {
		if picks++; picks == 1 {
			return base, nil
		}
		return pick(n)
	}

	s, p := StartBehindProxy(t, Options{Stage: st}, netproxy.Config{})
	if picks < 2 || s.Port == base || (s.PasvMin <= taken && taken <= s.PasvMax) {
		t.Fatalf("%d picks, control port %d, passive %d-%d; want a second pick clear of port %d",
			picks, s.Port, s.PasvMin, s.PasvMax, taken)
	}
	r := curlURLs(t, s, false, "ftp://"+p.Addr(s.Port)+"/"+stagegen.AnonDir+"/")
	if r.code != 0 || !bytes.Contains(r.out, []byte(path.Base(stagegen.HSTFile))) {
		t.Errorf("listing through the proxy: curl exit %d %s\n%s", r.code, r.errs, r.out)
	}
	if p.Stats().Accepted < 2 {
		t.Errorf("proxy accepted %d connections, want control and data", p.Stats().Accepted)
	}
}
