package ftpsd

import (
	"bufio"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxLine bounds one command line; longer lines end the session.
const maxLine = 4096

// session is one control connection, served by one goroutine.
type session struct {
	srv *Server
	log *slog.Logger
	r   *bufio.Reader
	w   *bufio.Writer

	mu      sync.Mutex // guards conn, pasv, waiting, active, done: abort reaches them from another goroutine
	conn    net.Conn   // the control connection, TLS once AUTH TLS succeeded
	pasv    *passive   // the listener of the latest EPSV or PASV, until a transfer takes it
	waiting *passive   // the listener a transfer waits on
	active  net.Conn   // the data connection of the transfer in progress
	done    bool

	secure   bool   // the control connection is TLS
	protect  bool   // PROT P: data connections are TLS
	user     string // from USER, until PASS
	loggedIn bool
	failures int    // failed logins on this connection
	cwd      string // absolute FTP path
	rest     int64  // REST offset for the next RETR
}

func newSession(srv *Server, c net.Conn) *session {
	return &session{srv: srv, conn: c, cwd: "/",
		log: srv.log.With("client", c.RemoteAddr().String()),
		r:   bufio.NewReaderSize(c, maxLine), w: bufio.NewWriter(c)}
}

// abort ends the session from another goroutine (Server.Close).
func (s *session) abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	s.conn.Close()
	if s.pasv != nil {
		s.pasv.close()
		s.pasv = nil
	}
	if s.waiting != nil {
		s.waiting.ln.Close() // its transfer reads the result
	}
	if s.active != nil {
		s.active.Close()
	}
}

func (s *session) run() {
	defer s.abort()
	s.reply(220, "mastfs FTPS server ready (read-only)")
	for {
		_ = s.control().SetReadDeadline(time.Now().Add(s.srv.cfg.IdleTimeout))
		line, err := s.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			s.reply(500, "Command line too long")
			return
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("ftpsd: control connection ended", "err", err)
			}
			return
		}
		verb, arg := splitCommand(string(line))
		s.record(verb, arg)
		if !s.handle(verb, arg) {
			return
		}
	}
}

// record logs a command, never the password.
func (s *session) record(verb, arg string) {
	if verb == "PASS" {
		s.log.Debug("ftpsd: command", "verb", verb) // no argument at all
		arg = "<hidden>"
	} else {
		s.log.Debug("ftpsd: command", "verb", verb, "arg", arg)
	}
	if w := s.srv.cfg.CommandLog; w != nil {
		line := verb
		if arg != "" {
			line += " " + arg
		}
		_, _ = io.WriteString(w, line+"\n")
	}
}

func (s *session) control() net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// splitCommand cuts "VERB argument\r\n" into an upper-case verb and the
// argument as sent (a file name may hold spaces).
func splitCommand(line string) (verb, arg string) {
	line = strings.TrimRight(line, "\r\n")
	verb, arg, _ = strings.Cut(line, " ")
	return strings.ToUpper(verb), arg
}

func (s *session) reply(code int, msg string) {
	fmt.Fprintf(s.w, "%d %s\r\n", code, msg)
	s.flush()
}

// replyLines sends a multi-line reply: the first line, the middle lines
// each indented by one space, and code plus last on the final line.
func (s *session) replyLines(code int, first string, middle []string, last string) {
	fmt.Fprintf(s.w, "%d-%s\r\n", code, first)
	for _, m := range middle {
		fmt.Fprintf(s.w, " %s\r\n", m)
	}
	fmt.Fprintf(s.w, "%d %s\r\n", code, last)
	s.flush()
}

func (s *session) flush() {
	_ = s.control().SetWriteDeadline(time.Now().Add(s.srv.cfg.DataTimeout))
	_ = s.w.Flush()
}

// readOnly are the commands that would change the tree.
var readOnly = map[string]bool{
	"STOR": true, "STOU": true, "APPE": true, "DELE": true, "MKD": true, "XMKD": true,
	"RMD": true, "XRMD": true, "RNFR": true, "RNTO": true, "SITE": true, "MFMT": true,
}

// handle runs one command and reports whether the session goes on.
func (s *session) handle(verb, arg string) bool {
	switch verb {
	case "QUIT":
		s.reply(221, "Goodbye")
		return false
	case "NOOP":
		s.reply(200, "NOOP ok")
		return true
	case "AUTH":
		return s.auth(arg)
	case "USER":
		return s.userCmd(arg)
	case "PASS":
		return s.pass(arg)
	case "FEAT":
		s.feat()
		return true
	case "SYST":
		s.reply(215, "UNIX Type: L8")
		return true
	case "OPTS":
		if strings.EqualFold(strings.TrimSpace(arg), "UTF8 ON") {
			s.reply(200, "UTF8 mode on")
		} else {
			s.reply(501, "Option not understood")
		}
		return true
	case "PBSZ":
		if !s.secure {
			s.reply(503, "PBSZ needs AUTH TLS first")
		} else {
			s.reply(200, "PBSZ=0")
		}
		return true
	case "PROT":
		s.prot(arg)
		return true
	case "HELP":
		s.reply(214, "Read-only FTPS: USER PASS AUTH PBSZ PROT FEAT TYPE EPSV PASV LIST NLST MLSD MLST SIZE MDTM REST RETR CWD CDUP PWD NOOP QUIT")
		return true
	}
	if !s.loggedIn {
		s.reply(530, "Log in with USER and PASS first")
		return true
	}
	switch verb {
	case "TYPE":
		switch strings.ToUpper(strings.TrimSpace(arg)) {
		case "I", "L 8", "A", "A N":
			s.reply(200, "Type set")
		default:
			s.reply(504, "Type not supported: use TYPE I")
		}
	case "MODE", "STRU":
		if a := strings.ToUpper(strings.TrimSpace(arg)); a == "S" || a == "F" {
			s.reply(200, "Ok")
		} else {
			s.reply(504, "Only stream mode and file structure")
		}
	case "PWD", "XPWD":
		s.reply(257, `"`+strings.ReplaceAll(s.cwd, `"`, `""`)+`" is the current directory`)
	case "CWD", "XCWD":
		s.cwdCmd(arg)
	case "CDUP", "XCUP":
		s.cwdCmd("..")
	case "EPSV":
		s.epsv(arg)
	case "PASV":
		s.pasvCmd()
	case "PORT", "EPRT":
		s.reply(502, "Active mode is not offered: use EPSV or PASV")
	case "REST":
		n, err := strconv.ParseInt(strings.TrimSpace(arg), 10, 64)
		if err != nil || n < 0 {
			s.reply(501, "REST wants a byte offset")
			break
		}
		s.rest = n
		s.reply(350, fmt.Sprintf("Restarting at %d. Send RETR to start", n))
	case "RETR":
		s.retr(arg)
	case "LIST", "NLST", "MLSD":
		s.list(verb, arg)
	case "MLST":
		s.mlst(arg)
	case "SIZE":
		s.size(arg)
	case "MDTM":
		s.mdtm(arg)
	case "ABOR":
		s.reply(225, "No transfer to abort")
	case "ALLO":
		s.reply(202, "No storage needed: this server is read-only")
	default:
		if readOnly[verb] {
			s.reply(550, "Permission denied: this server is read-only")
		} else {
			s.reply(502, "Command not implemented")
		}
	}
	return true
}

func (s *session) feat() {
	feats := []string{"EPSV", "PASV", "MDTM", "SIZE", "REST STREAM", "UTF8", "TVFS"}
	if !s.srv.cfg.ListOnly {
		feats = append(feats, "MLST type*;size*;modify*;perm*;")
	}
	if s.srv.cfg.TLS != nil {
		feats = append([]string{"AUTH TLS", "PBSZ", "PROT"}, feats...)
	}
	s.replyLines(211, "Features:", feats, "End")
}

// auth upgrades the control connection to TLS.
func (s *session) auth(arg string) bool {
	if s.srv.cfg.TLS == nil {
		s.reply(502, "TLS is not configured on this server")
		return true
	}
	if a := strings.ToUpper(strings.TrimSpace(arg)); a != "TLS" && a != "TLS-C" && a != "SSL" {
		s.reply(504, "AUTH TLS only")
		return true
	}
	if s.secure {
		s.reply(503, "Already using TLS")
		return true
	}
	s.reply(234, "Proceed with TLS negotiation")
	raw := s.control()
	tc := tls.Server(raw, s.srv.cfg.TLS)
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.DataTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.log.Info("ftpsd: TLS handshake on the control connection failed", "err", err)
		return false
	}
	s.mu.Lock()
	s.conn = tc
	s.mu.Unlock()
	s.r = bufio.NewReaderSize(tc, maxLine)
	s.w = bufio.NewWriter(tc)
	s.secure = true
	return true
}

func (s *session) prot(arg string) {
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "P":
		if !s.secure {
			s.reply(503, "PROT P needs AUTH TLS first")
			return
		}
		s.protect = true
		s.reply(200, "Protection level set to Private")
	case "C":
		if s.srv.cfg.TLS != nil {
			s.reply(536, "Data connections must be protected: use PROT P")
			return
		}
		s.reply(200, "Protection level set to Clear")
	default:
		s.reply(504, "PROT P or PROT C")
	}
}

func (s *session) userCmd(arg string) bool {
	if s.srv.cfg.TLS != nil && !s.secure {
		s.reply(530, "This server takes logins over TLS only: send AUTH TLS first")
		return true
	}
	s.user, s.loggedIn = arg, false
	if s.srv.cfg.Anonymous && isAnonymous(arg) {
		s.reply(331, "Anonymous login ok, send your e-mail address as password")
	} else {
		s.reply(331, "Password required for "+arg)
	}
	return true
}

func (s *session) pass(arg string) bool {
	if s.user == "" {
		s.reply(503, "Send USER first")
		return true
	}
	ok := s.srv.cfg.Anonymous && isAnonymous(s.user)
	if want, known := s.srv.cfg.Users[s.user]; known && !ok {
		ok = subtle.ConstantTimeCompare([]byte(want), []byte(arg)) == 1
	}
	if !ok {
		s.failures++
		s.log.Info("ftpsd: login refused", "user", s.user)
		time.Sleep(100 * time.Millisecond)
		s.reply(530, "Login incorrect")
		s.user = ""
		return s.failures < 3
	}
	s.loggedIn = true
	s.log.Debug("ftpsd: logged in", "user", s.user)
	s.reply(230, "Logged in")
	return true
}

func isAnonymous(user string) bool {
	u := strings.ToLower(user)
	return u == "anonymous" || u == "ftp"
}

// resolve turns a client path into an absolute, clean FTP path; ".."
// cannot climb above "/".
func (s *session) resolve(arg string) string {
	p := arg
	if !strings.HasPrefix(p, "/") {
		p = path.Join(s.cwd, p)
	}
	return path.Clean("/" + p)
}

func (s *session) cwdCmd(arg string) {
	p := s.resolve(arg)
	st, err := s.srv.backend.Stat(p)
	if err != nil || !st.IsDir() {
		s.reply(550, "No such directory: "+p)
		return
	}
	s.cwd = p
	s.reply(250, "Directory changed to "+p)
}

func (s *session) size(arg string) {
	p := s.resolve(arg)
	st, err := s.srv.backend.Stat(p)
	if err != nil || !st.Mode().IsRegular() {
		s.reply(550, "Not a plain file: "+p)
		return
	}
	s.reply(213, strconv.FormatInt(st.Size(), 10))
}

func (s *session) mdtm(arg string) {
	p := s.resolve(arg)
	st, err := s.srv.backend.Stat(p)
	if err != nil {
		s.reply(550, "No such file: "+p)
		return
	}
	s.reply(213, st.ModTime().UTC().Format("20060102150405"))
}

// fsError is the reply to a failed look-up of p.
func (s *session) fsError(p string, err error) {
	switch {
	case errors.Is(err, fs.ErrPermission):
		s.reply(550, "Permission denied: "+p)
	case errors.Is(err, ErrNotDirectory):
		s.reply(501, "MLSD lists directories: use MLST for a file")
	case errors.Is(err, errors.ErrUnsupported):
		s.reply(502, "Command not implemented")
	default:
		s.reply(550, "No such file or directory: "+p)
	}
}
