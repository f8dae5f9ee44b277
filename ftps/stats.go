package ftps

import (
	"crypto/tls"
	"sync/atomic"
)

type counters struct {
	dials, dataConns, discarded, retries, tlsFallbacks, streams, bytesRead, readyUsed, earlyEPSV atomic.Int64
	tlsVersion                                                                                   atomic.Uint32 // of the latest data connection
}

// Stats are running totals of what the client did.
type Stats struct {
	Dials        int64 // control connections opened
	DataConns    int64 // data connections opened
	ReadyUsed    int64 // transfers whose data connection was made ahead
	Discarded    int64 // connections dropped after an error
	Retries      int64
	TLSFallbacks int64
	Streams      int64       // file transfers in flight
	BytesRead    int64       // bytes received on data connections
	Open, Busy   int         // control connections now: existing, checked out
	Limit        int         // current connection limit (lowered by a 421)
	TLSVersion   uint16      // negotiated by the latest data connection
	KeyExchange  tls.CurveID // the server's choice in the latest handshake; offered first from then on
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	open, busy, limit := c.open, c.busy, c.limit
	c.mu.Unlock()
	return Stats{
		Dials: c.stats.dials.Load(), DataConns: c.stats.dataConns.Load(), ReadyUsed: c.stats.readyUsed.Load(),
		Discarded: c.stats.discarded.Load(), Retries: c.stats.retries.Load(),
		TLSFallbacks: c.stats.tlsFallbacks.Load(), Streams: c.stats.streams.Load(),
		BytesRead: c.stats.bytesRead.Load(), Open: open, Busy: busy, Limit: limit,
		TLSVersion: uint16(c.stats.tlsVersion.Load()), KeyExchange: tls.CurveID(c.curve.Load()),
	}
}
