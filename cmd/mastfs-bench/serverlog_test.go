package bench

import (
	"os"
	"strconv"
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
	proto, xfer int64
	watch       *connWatch
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

// begin marks the logs and starts watching the server's sockets.
func (m meter) begin() mark {
	return mark{
		proto: fileSize(m.s.ProtocolLog),
		xfer:  fileSize(m.s.XferLog),
		watch: watchConns(m.s.Port, m.s.PasvMin, m.s.PasvMax),
	}
}

// end waits for the logs to settle (a transfer is logged when it ends,
// which can be a moment after the client stopped reading) and counts what
// was logged since mk.
func (m meter) end(mk mark) cost {
	m.settle()
	var c cost
	c.MaxCtrl, c.MaxData = mk.watch.end()
	for _, line := range linesFrom(m.s.ProtocolLog, mk.proto) {
		if strings.Contains(line, `] CONNECT: Client "`) {
			c.Conns++
			continue
		}
		const marker = `FTP command: Client "`
		i := strings.Index(line, marker)
		if i < 0 {
			continue
		}
		rest := line[i+len(marker):]
		j := strings.Index(rest, `", "`)
		if j < 0 {
			continue
		}
		c.Commands++
		verb, _, _ := strings.Cut(rest[j+4:], " ")
		switch strings.ToUpper(strings.Trim(verb, `"`)) {
		case "LIST", "NLST", "MLSD":
			c.Lists++
		case "RETR":
			c.Retrs++
		case "SIZE", "MDTM", "MLST":
			c.Stats++
		}
	}
	for _, line := range linesFrom(m.s.XferLog, mk.xfer) {
		f := strings.Fields(line)
		if len(f) < 18 || f[len(f)-7] != "o" { // direction: o is a download
			continue
		}
		n, _ := strconv.ParseInt(f[7], 10, 64)
		c.Sent += n
		if f[len(f)-1] == "c" {
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
	last := fileSize(m.s.ProtocolLog) + fileSize(m.s.XferLog)
	since := time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		n := fileSize(m.s.ProtocolLog) + fileSize(m.s.XferLog)
		if n != last {
			last, since = n, time.Now()
			continue
		}
		if time.Since(since) >= quiet {
			return
		}
	}
}

// linesFrom returns the complete lines of a file after offset off.
func linesFrom(p string, off int64) []string {
	b, err := os.ReadFile(p)
	if err != nil || off > int64(len(b)) {
		return nil
	}
	b = b[off:]
	if i := strings.LastIndexByte(string(b), '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}
