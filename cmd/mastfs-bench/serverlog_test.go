package bench

import (
	"strings"
	"time"

	"mastfs/ftps/ftpstest"
)

// cost is what one action cost the server, counted from its own logs
// (vsftpd's protocol log and xferlog) and from its sockets.
type cost struct {
	Commands int   `json:"commands"` // FTP commands received
	Lists    int   `json:"lists"`    // LIST, NLST, MLSD
	Retrs    int   `json:"retrs"`    // RETR
	Stats    int   `json:"stats"`    // SIZE, MDTM, MLST
	Conns    int   `json:"conns"`    // control connections opened
	MaxCtrl  int   `json:"max_ctrl"` // control connections open at once, at most
	MaxData  int   `json:"max_data"` // data connections open at once, at most
	Sent     int64 `json:"sent"`     // bytes sent in downloads, complete or cut short
	Complete int   `json:"complete"` // downloads logged complete
	Partial  int   `json:"partial"`  // downloads logged cut short
}

func (c *cost) add(o cost) {
	c.Commands += o.Commands
	c.Lists += o.Lists
	c.Retrs += o.Retrs
	c.Stats += o.Stats
	c.Conns += o.Conns
	c.MaxCtrl = max(c.MaxCtrl, o.MaxCtrl)
	c.MaxData = max(c.MaxData, o.MaxData)
	c.Sent += o.Sent
	c.Complete += o.Complete
	c.Partial += o.Partial
}

// meter counts one server's costs between two points in time.
type meter struct {
	s *ftpstest.Server
}

// mark is where the server's logs stood at one moment.
type mark struct {
	logs  ftpstest.LogMark
	watch *connWatch
}

// begin marks the logs and starts watching the server's sockets.
func (m meter) begin() mark {
	return mark{logs: m.s.Mark(), watch: watchConns(m.s.Port, m.s.PasvMin, m.s.PasvMax)}
}

// end waits for the logs to settle (a transfer is logged when it ends,
// which can be a moment after the client stopped reading) and counts what
// was logged since mk.
func (m meter) end(mk mark) cost {
	m.settle()
	var c cost
	c.MaxCtrl, c.MaxData = mk.watch.end()
	a, _ := m.s.Since(mk.logs) // what a log does not say is not counted
	c.Conns = a.Connects
	c.Commands = len(a.Commands)
	for _, cmd := range a.Commands {
		verb, _, _ := strings.Cut(cmd, " ")
		switch strings.ToUpper(verb) {
		case "LIST", "NLST", "MLSD":
			c.Lists++
		case "RETR":
			c.Retrs++
		case "SIZE", "MDTM", "MLST":
			c.Stats++
		}
	}
	for _, tr := range a.Transfers {
		if tr.Incoming {
			continue
		}
		c.Sent += tr.Bytes
		if tr.Complete {
			c.Complete++
		} else {
			c.Partial++
		}
	}
	return c
}

// settle waits until neither log has grown for a moment, 5 s at most.
func (m meter) settle() {
	const quiet = 300 * time.Millisecond
	deadline := time.Now().Add(5 * time.Second)
	last := m.s.Mark()
	since := time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		n := m.s.Mark()
		if n != last {
			last, since = n, time.Now()
			continue
		}
		if time.Since(since) >= quiet {
			return
		}
	}
}
