package ftpstest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// Transfer is one line of a server's transfer log.
type Transfer struct {
	Time     time.Time // when the transfer ended, server clock
	Seconds  int       // how long it took, whole seconds
	Path     string    // FTP path ("/anonymous/...") as logged: see LogPath
	Bytes    int64     // bytes really sent or received
	Incoming bool      // an upload; false for downloads
	Complete bool      // vsftpd: false when cut short; pure-ftpd: always true
	User     string    // the account name, or "anonymous"
}

// Transfers returns the transfer log since the last ResetLogs. A server
// writes a line when a transfer ends, which can be a moment after the
// client has seen the last byte: see WaitTransfers.
func (s *Server) Transfers() ([]Transfer, error) {
	a, err := s.Since(s.resetMark())
	return a.Transfers, err
}

// WaitTransfers polls the transfer log until it holds at least n lines
// since the last ResetLogs, or the limit passes.
func (s *Server) WaitTransfers(n int, limit time.Duration) ([]Transfer, error) {
	deadline := time.Now().Add(limit)
	for {
		trs, err := s.Transfers()
		if err != nil || len(trs) >= n {
			return trs, err
		}
		if time.Now().After(deadline) {
			return trs, fmt.Errorf("%s: %d transfers logged after %v, want %d", s.Name, len(trs), limit, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SentBytes is the total the server sent in file downloads since the last
// ResetLogs, complete or cut short, as its transfer log records. Listings
// are not counted.
func (s *Server) SentBytes() (int64, error) {
	trs, err := s.Transfers()
	var n int64
	for _, tr := range trs {
		if !tr.Incoming {
			n += tr.Bytes
		}
	}
	return n, err
}

// parseXfer reads the wu-ftpd xferlog format: five date fields, seconds,
// host, bytes, file name (which may hold spaces), then nine fixed fields.
func (s *Server) parseXfer(line string) (Transfer, error) {
	f := strings.Fields(line)
	if len(f) < 18 {
		return Transfer{}, fmt.Errorf("short transfer log line %q", line)
	}
	when, err := time.Parse("Mon Jan 2 15:04:05 2006", strings.Join(f[0:5], " "))
	if err != nil {
		return Transfer{}, fmt.Errorf("transfer log date: %w", err)
	}
	secs, _ := strconv.Atoi(f[5])
	n, err := strconv.ParseInt(f[7], 10, 64)
	if err != nil {
		return Transfer{}, fmt.Errorf("transfer log bytes %q: %w", f[7], err)
	}
	tailf := f[len(f)-9:]
	tr := Transfer{
		Time:     when,
		Seconds:  secs,
		Path:     s.ftpPath(strings.Join(f[8:len(f)-9], " ")),
		Bytes:    n,
		Incoming: tailf[2] == "i",
		Complete: tailf[8] == "c",
		User:     tailf[4],
	}
	// vsftpd logs an anonymous user by the password given (an e-mail
	// address) with access mode "a"; pure-ftpd by the system user "ftp".
	if tailf[3] == "a" || (s.Impl == "pure-ftpd" && tr.User == "ftp") {
		tr.User = "anonymous"
	}
	return tr, nil
}

// LogPath is how the transfer log writes an FTP path: both servers write
// spaces as "_", and vsftpd writes every byte outside printable ASCII as "?".
func (s *Server) LogPath(ftpPath string) string {
	b := []byte(path.Clean("/" + ftpPath))
	for i, c := range b {
		switch {
		case c == ' ':
			b[i] = '_'
		case s.Impl == "vsftpd" && (c < 0x20 || c >= 0x7f):
			b[i] = '?'
		}
	}
	return string(b)
}

// ftpPath turns a logged path into the path the client used.
func (s *Server) ftpPath(p string) string {
	p = path.Clean(p)
	for _, prefix := range s.pathPrefix {
		if rest, ok := strings.CutPrefix(p, prefix+"/"); ok {
			return path.Clean("/" + rest)
		}
	}
	return p
}

// Commands returns the FTP commands the server received since the last
// ResetLogs, in order, as "VERB args". PASS arguments are replaced by
// "<hidden>" so that nothing printed from here holds a password.
func (s *Server) Commands() ([]string, error) {
	if s.ProtocolLog == "" {
		return nil, fmt.Errorf("%s keeps no command log: %w", s.Impl, errors.ErrUnsupported)
	}
	a, err := s.Since(s.resetMark())
	return a.Commands, err
}

// LogMark is where a server's logs stood at one moment.
type LogMark struct {
	protocol, xfer int64 // sizes of ProtocolLog and XferLog
}

// Mark returns where the server's logs stand now, for Since.
func (s *Server) Mark() LogMark {
	return LogMark{protocol: fileSize(s.ProtocolLog), xfer: fileSize(s.XferLog)}
}

// Activity is what a server's logs recorded in some span of time.
type Activity struct {
	Commands  []string   // as Commands returns them; none when the server keeps no command log
	Connects  int        // control connections accepted: vsftpd logs them, the others do not (0)
	Transfers []Transfer // as Transfers returns them
}

// Since reads what the server's logs recorded after m: complete lines
// only, so a line being written is left for the next call.
func (s *Server) Since(m LogMark) (Activity, error) {
	var a Activity
	if s.ProtocolLog != "" {
		text, err := readFrom(s.ProtocolLog, m.protocol)
		if err != nil {
			return a, err
		}
		for _, line := range strings.Split(text, "\n") {
			cmd, connect := s.protocolLine(line)
			if cmd != "" {
				a.Commands = append(a.Commands, cmd)
			}
			if connect {
				a.Connects++
			}
		}
	}
	text, err := readFrom(s.XferLog, m.xfer)
	if err != nil {
		return a, err
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		tr, err := s.parseXfer(line)
		if err != nil {
			return a, fmt.Errorf("%s: %s: %w", s.Name, s.XferLog, err)
		}
		a.Transfers = append(a.Transfers, tr)
	}
	return a, nil
}

// vsftpdLine reads a line of vsftpd's protocol log: a command, or a
// control connection accepted.
//
//	Mon Dec  7 03:18:00 2026 [pid 3] CONNECT: Client "127.0.0.1"
//	Mon Dec  7 03:18:00 2026 [pid 3] [ftp] FTP command: Client "127.0.0.1", "RETR x"
func vsftpdLine(line string) (cmd string, connect bool) {
	if strings.Contains(line, `] CONNECT: Client "`) {
		return "", true
	}
	const marker = `FTP command: Client "`
	i := strings.Index(line, marker)
	if i < 0 {
		return "", false
	}
	rest := line[i+len(marker):]
	j := strings.Index(rest, `", "`)
	if j < 0 {
		return "", false
	}
	return hidePassword(strings.TrimSuffix(rest[j+4:], `"`)), false
}

// commandLine reads a line of a log that holds the command line alone, as
// ProFTPD's ExtendedLog ("%r") and the pyftpdlib script write it.
func commandLine(line string) (cmd string, connect bool) {
	return hidePassword(strings.TrimSpace(line)), false
}

// hidePassword replaces the argument of PASS, so that nothing printed from
// a command log holds a password.
func hidePassword(cmd string) string {
	if verb, _, _ := strings.Cut(cmd, " "); strings.EqualFold(verb, "PASS") {
		return "PASS <hidden>"
	}
	return cmd
}

// ResetLogs makes Transfers, SentBytes and Commands start afresh, so a test
// can count what one action cost. The files themselves are kept.
func (s *Server) ResetLogs() error {
	m := s.Mark()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reset = m
	return nil
}

func (s *Server) resetMark() LogMark {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reset
}

// fileSize is the size of file, 0 when it does not exist (yet).
func fileSize(file string) int64 {
	st, err := os.Stat(file)
	if err != nil {
		return 0
	}
	return st.Size()
}

// readFrom returns a log's complete lines after offset off. A log that
// shrank (was replaced) is read from its start.
func readFrom(file string, off int64) (string, error) {
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil // nothing logged yet
	}
	if err != nil {
		return "", err
	}
	if off > int64(len(b)) {
		off = 0
	}
	b = b[off:]
	// A line still being written is left for the next call.
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return string(b[:i+1]), nil
	}
	return "", nil
}
