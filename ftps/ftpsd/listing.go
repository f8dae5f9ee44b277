package ftpsd

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"
)

// entry is one name of a listing with its own (not its target's) attributes.
type entry struct {
	name   string
	info   fs.FileInfo
	target string // for symlinks
}

// list answers LIST, NLST and MLSD for a directory, and LIST and NLST for
// a single file as well.
func (s *session) list(verb, arg string) {
	arg = stripListOptions(arg)
	p, rel := s.resolve(arg)
	st, err := s.srv.root.Stat(rel)
	if err != nil {
		s.fsError(p, err)
		return
	}
	var entries []entry
	if st.IsDir() {
		if entries, err = s.readDir(rel); err != nil {
			s.fsError(p, err)
			return
		}
	} else {
		if verb == "MLSD" {
			s.reply(501, "MLSD lists directories: use MLST for a file")
			return
		}
		lst, err := s.srv.root.Lstat(rel)
		if err != nil {
			s.fsError(p, err)
			return
		}
		entries = []entry{s.entryOf(rel, path.Base(p), lst)}
	}
	var buf bytes.Buffer
	now := time.Now()
	if verb == "MLSD" {
		fmt.Fprintf(&buf, "type=cdir;modify=%s;perm=el; %s\r\n", st.ModTime().UTC().Format("20060102150405"), p)
	}
	for _, e := range entries {
		switch verb {
		case "NLST":
			buf.WriteString(e.name + "\r\n")
		case "MLSD":
			buf.WriteString(facts(e.info, e.target) + " " + e.name + "\r\n")
		default:
			buf.WriteString(longLine(e, now) + "\r\n")
		}
	}
	s.transfer("listing of "+p, func(w io.Writer) error {
		_, err := w.Write(buf.Bytes())
		return err
	})
}

// mlst answers MLST on the control connection.
func (s *session) mlst(arg string) {
	p, rel := s.resolve(arg)
	lst, err := s.srv.root.Lstat(rel)
	if err != nil {
		s.fsError(p, err)
		return
	}
	e := s.entryOf(rel, p, lst)
	s.replyLines(250, "Listing "+p, []string{facts(e.info, e.target) + " " + p}, "End")
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

// readDir lists a directory, sorted by name. Names that would break a
// listing line (CR, LF) are left out.
func (s *session) readDir(rel string) ([]entry, error) {
	d, err := s.srv.root.Open(rel)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	des, err := d.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	out := make([]entry, 0, len(des))
	for _, de := range des {
		if strings.ContainsAny(de.Name(), "\r\n\x00") {
			continue
		}
		info, err := de.Info()
		if err != nil {
			continue // gone meanwhile
		}
		out = append(out, s.entryOf(path.Join(rel, de.Name()), de.Name(), info))
	}
	return out, nil
}

func (s *session) entryOf(rel, name string, info fs.FileInfo) entry {
	e := entry{name: name, info: info}
	if info.Mode()&fs.ModeSymlink != 0 {
		e.target, _ = s.srv.root.Readlink(rel)
	}
	return e
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
