package ftpstest

import (
	"crypto/tls"
	"testing"

	"mastfs/ftps/stagegen"
)

// Quirks are what a server does that a client must live with. The zero
// value is a server that vsftpd's habits describe.
type Quirks struct {
	// TicketlessReuse: data connections must resume the control
	// connection's TLS 1.2 session and the server issues no session
	// tickets, so only resumption by session ID will do. Go's client
	// cannot, and gets "425 Unable to build data connection" on every
	// data connection; curl and lftp can.
	TicketlessReuse bool
	// MLSDRefused: FEAT advertises MLSD, and MLSD answers 550; LIST works.
	MLSDRefused bool
	// EarlyBytesRefused: a data connection that sends bytes before the
	// transfer command (a TLS ClientHello made ahead) is closed; the
	// command is then answered 150 and nothing more: no final reply came
	// within a minute (pyftpdlib 1.5.7). A connection made ahead that stays
	// silent until the command works (125).
	EarlyBytesRefused bool
	// CapAtLogin: beyond MaxClients or MaxPerIP a new connection is
	// greeted 220 as usual, and its PASS answered 530 ("the maximum number
	// of allowed clients are already connected"), not 421: a client that
	// takes every 530 for a wrong password is misled.
	CapAtLogin bool
}

// Kind is one server implementation in one configuration of the interop
// matrix.
type Kind struct {
	Name string // fit for t.Run, e.g. "proftpd-tls12-tickets"; also the server's Name
	Impl string // as Server.Impl

	start     func(testing.TB, Options) *Server
	configure func(*Options) // sets what makes this kind, over the caller's options
	available func() error
}

// Start starts a server of this kind with o, over which the kind's own
// settings (TLS version, tickets, ...) are laid. It stops when the test ends.
func (k Kind) Start(t testing.TB, o Options) *Server {
	t.Helper()
	if k.configure != nil {
		k.configure(&o)
	}
	if o.Name == "" {
		o.Name = k.Name
	}
	return k.start(t, o)
}

// Available reports why this machine cannot start the kind, or nil.
func (k Kind) Available() error { return k.available() }

// Kinds lists every server kind the harness starts, the ones mastfs does
// not yet work with included: their Quirks say why.
func Kinds() []Kind {
	vsftpd := func(name string, configure func(*Options)) Kind {
		return Kind{Name: name, Impl: "vsftpd", start: StartVsftpd, configure: configure,
			available: func() error { _, err := vsftpdBinary(); return err }}
	}
	proftpd := func(name string, configure func(*Options)) Kind {
		return Kind{Name: name, Impl: "proftpd", start: StartProFTPD, configure: configure,
			available: func() error { _, err := proFTPDBinary(); return err }}
	}
	return []Kind{
		vsftpd("vsftpd-explicit", nil),
		vsftpd("vsftpd-implicit", func(o *Options) { o.Implicit = true }),
		vsftpd("vsftpd-tls12", func(o *Options) { o.MaxTLS = tls.VersionTLS12 }),
		{Name: "pure-ftpd-explicit", Impl: "pure-ftpd", start: StartPureFTPd,
			available: func() error { _, err := pureFTPdBinary(); return err }},
		proftpd("proftpd-tls13", func(o *Options) { o.MaxTLS = tls.VersionTLS13 }),
		proftpd("proftpd-tls12-tickets", func(o *Options) {
			o.MaxTLS, o.SessionTickets = tls.VersionTLS12, true
		}),
		proftpd("proftpd-tls12", func(o *Options) { o.MaxTLS, o.SessionTickets = tls.VersionTLS12, false }),
		proftpd("proftpd-mlsd-refused", func(o *Options) { o.RefuseMLSD = true }),
		{Name: "pyftpdlib", Impl: "pyftpdlib", start: StartPyftpdlib, available: pyftpdlibAvailable},
	}
}

// InteropMatrix starts every kind of Kinds on one shared default stage.
// A kind this machine cannot start is left out with a note (under CI=true
// the test fails instead); with none available the test is skipped.
func InteropMatrix(t testing.TB) []*Server {
	t.Helper()
	return StartKinds(t, NewStage(t, stagegen.StageOptions{}), Options{}, Kinds())
}

// StartKinds starts the given kinds with o, all serving st, leaving out
// those this machine cannot start as InteropMatrix does.
func StartKinds(t testing.TB, st *stagegen.Stage, o Options, kinds []Kind) []*Server {
	t.Helper()
	requireRoot(t)
	o.Stage = st
	var out []*Server
	for _, k := range kinds {
		if err := k.Available(); err != nil {
			missing(t, k.Name+": "+err.Error(), "make deps", true)
			continue
		}
		out = append(out, k.Start(t, o))
	}
	if len(out) == 0 {
		t.Skip("no FTPS server available: run make deps")
	}
	return out
}
