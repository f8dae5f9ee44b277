package ftpsd

import (
	"fmt"
	"io/fs"
	"strings"
	"time"
)

// list answers LIST, NLST and MLSD for a directory, and LIST and NLST for
// a single file as well.
func (s *session) list(verb, arg string) {
	p := s.resolve(stripListOptions(arg))
	body, err := s.srv.backend.List(p, verb)
	if err != nil {
		s.fsError(p, err)
		return
	}
	s.transfer("listing of "+p, body)
}

// mlst answers MLST on the control connection.
func (s *session) mlst(arg string) {
	p := s.resolve(arg)
	body, err := s.srv.backend.List(p, "MLST")
	if err != nil {
		s.fsError(p, err)
		return
	}
	var b strings.Builder
	if err := body(&b); err != nil {
		s.fsError(p, err)
		return
	}
	var lines []string
	for _, l := range strings.Split(b.String(), "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" {
			lines = append(lines, l)
		}
	}
	s.replyLines(250, "Listing "+p, lines, "End")
}

// stripListOptions drops ls-style options ("-la") that clients put before
// the path of a LIST.
func stripListOptions(arg string) string {
	for strings.HasPrefix(arg, "-") {
		_, rest, _ := strings.Cut(arg, " ")
		arg = rest
	}
	return arg
}

// longLine formats an entry as "ls -l" does: recent times with the clock,
// older ones (or future ones) with the year. Times are UTC.
func longLine(e entry, now time.Time) string {
	mt := e.info.ModTime().UTC()
	date := mt.Format("Jan _2 15:04")
	if age := now.Sub(mt); age < -24*time.Hour || age > 180*24*time.Hour {
		date = mt.Format("Jan _2  2006")
	}
	size := e.info.Size()
	name := e.name
	if e.target != "" {
		size = int64(len(e.target))
		name += " -> " + e.target
	}
	links := 1
	if e.info.IsDir() {
		links = 2
	}
	return fmt.Sprintf("%s %3d ftp      ftp      %12d %s %s", modeString(e.info.Mode()), links, size, date, name)
}

func modeString(m fs.FileMode) string {
	b := []byte("----------")
	switch {
	case m.IsDir():
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	}
	const rwx = "rwxrwxrwx"
	for i := range 9 {
		if m&(1<<uint(8-i)) != 0 {
			b[i+1] = rwx[i]
		}
	}
	return string(b)
}

// facts formats the RFC 3659 facts of an entry, ending with ';'. A symlink
// names its target unless the target would break the fact syntax.
func facts(info fs.FileInfo, target string) string {
	modify := info.ModTime().UTC().Format("20060102150405")
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		if target == "" || strings.ContainsAny(target, ";\r\n") {
			return "type=OS.unix=slink;modify=" + modify + ";"
		}
		return "type=OS.unix=slink:" + target + ";modify=" + modify + ";"
	case info.IsDir():
		return "type=dir;modify=" + modify + ";perm=el;"
	default:
		return fmt.Sprintf("type=file;size=%d;modify=%s;perm=r;", info.Size(), modify)
	}
}
