package ftpstest

import (
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
func StartBehindProxy(t testing.TB, o Options, cfg netproxy.Config) (*Server, *netproxy.Proxy) {
	t.Helper()
	o.PasvAddress = ProxyHost
	if o.PasvPorts <= 0 {
		o.PasvPorts = 20
	}
	s := StartVsftpd(t, o)
	cfg.ListenHost, cfg.TargetHost = ProxyHost, s.Host
	cfg.Ports = []int{s.Port}
	for port := s.PasvMin; port <= s.PasvMax; port++ {
		cfg.Ports = append(cfg.Ports, port)
	}
	p, err := netproxy.Start(cfg)
	if err != nil {
		t.Fatalf("proxy in front of %s: %v", s, err)
	}
	t.Cleanup(func() { p.Close() })
	return s, p
}
