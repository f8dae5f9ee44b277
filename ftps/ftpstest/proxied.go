package ftpstest

import (
	"errors"
	"syscall"
	"testing"

	"mastfs/ftps/ftpstest/netproxy"
)

// ProxyHost is the loopback address a fault proxy listens on. The test
// certificate names it, so clients verify the server through the proxy.
const ProxyHost = "127.0.0.3"

// StartBehindProxy starts vsftpd announcing ProxyHost in its passive
// replies, and a proxy on ProxyHost forwarding its control port and whole
// passive range to it: a client that connects to ProxyHost:s.Port reaches
// everything through the proxy, whose faults (cuts, stalls, delay, down)
// then apply to control and data connections alike. o.PasvAddress is
// overridden; cfg's hosts and ports are filled in. Both stop when the test
// ends.
//
// Other tests may hold some of those ports on ProxyHost (another proxy, a
// server's passive range is only bound on demand): when the proxy finds a
// port taken, the server is stopped and both start over on other ports.
func StartBehindProxy(t testing.TB, o Options, cfg netproxy.Config) (*Server, *netproxy.Proxy) {
	t.Helper()
	o.PasvAddress = ProxyHost
	if o.PasvPorts <= 0 {
		o.PasvPorts = 20
	}
	var lastErr error
	for try := 0; try < 10; try++ {
		s := StartVsftpd(t, o)
		c := cfg
		c.ListenHost, c.TargetHost = ProxyHost, s.Host
		c.Ports = []int{s.Port}
		for port := s.PasvMin; port <= s.PasvMax; port++ {
			c.Ports = append(c.Ports, port)
		}
		p, err := netproxy.Start(c)
		if err == nil {
			t.Cleanup(func() { p.Close() })
			return s, p
		}
		s.Stop()
		lastErr = err
		if o.Port != 0 || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		t.Logf("proxy in front of %s: %v; starting over on other ports", s, err)
	}
	t.Fatalf("proxy in front of vsftpd: %v", lastErr)
	return nil, nil
}
