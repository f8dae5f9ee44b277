package ftps

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"mastfs/fs/stage"
)

// futureSlack is how far past now a yearless "Mon DD HH:MM" date may fall
// and still be placed in the current year. It absorbs time-zone and clock
// differences between client and server; ls prints such dates only for
// files at most six months old, so any slack well under that is safe.
const futureSlack = 3 * 24 * time.Hour

// Reasons a line or entry is refused. ParseList and ParseMLSD wrap them with
// the line number and the raw line.
var (
	errUnrecognized = errors.New("unrecognized line")
	errSpecial      = errors.New("device, pipe or socket skipped")
	errFileType     = errors.New("unsupported file type")
	errNoDate       = errors.New("no size and date columns")
	errBadDate      = errors.New("invalid date or time")
	errBadSize      = errors.New("invalid size")
	errNoName       = errors.New("no name")
	errNoTarget     = errors.New("symlink without target")
	errBadTarget    = errors.New("symlink target holds NUL or CR")
	errBadFact      = errors.New("malformed fact")
	errNoType       = errors.New("no type fact")
)

// ParseList parses the body of a LIST reply: unix-style (`ls -l`) lines and
// DOS/IIS-style lines. now is the time used to place "Mon DD HH:MM" dates
// (no year) in the right year: the most recent such date not more than a few
// days after now. Times are UTC. It returns the entries it could parse and
// one error per line it could not, or per entry it dropped; each error names
// the line, says why and quotes the raw line.
func ParseList(data []byte, now time.Time) ([]stage.Entry, []error) {
	now = now.UTC()
	return parseLines(data, "list", func(line []byte) (stage.Entry, bool, error) {
		if c := bytes.TrimLeft(line, " \t")[0]; c >= '0' && c <= '9' {
			e, err := parseDOS(line)
			return e, false, err
		}
		e, err := parseUnix(line, now)
		if errors.Is(err, errUnrecognized) && isTotal(line) {
			return stage.Entry{}, true, nil
		}
		return e, false, err
	})
}

// ParseMLSD parses the body of an MLSD reply (RFC 3659). Fact names and the
// values of type are case-insensitive. The name follows the space after the
// last fact's ';' and may hold spaces and ';'. Entries of type cdir and pdir
// are skipped silently; OS.unix=slink:TARGET is a symlink. Times are UTC.
func ParseMLSD(data []byte) ([]stage.Entry, []error) {
	return parseLines(data, "mlsd", parseFacts)
}

// parseLines runs parse over each non-blank line of data, drops "." and
// "..", checks every other name and collects one error per refused line.
// parse reports skip for lines that are dropped without complaint.
func parseLines(data []byte, what string, parse func([]byte) (stage.Entry, bool, error)) ([]stage.Entry, []error) {
	// Sizing for one entry a line spares the copies of a growing slice,
	// which otherwise cost more than the parsing on a large directory.
	entries := make([]stage.Entry, 0, bytes.Count(data, []byte("\n"))+1)
	var errs []error
	n := 0
	for line := range bytes.Lines(data) {
		n++
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(bytes.TrimLeft(line, " \t")) == 0 {
			continue
		}
		e, skip, err := parse(line)
		if skip || err == nil && (e.Name == "." || e.Name == "..") {
			continue
		}
		if err == nil {
			err = CheckName(e.Name)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s line %d: %w: %q", what, n, err, line))
			continue
		}
		entries = append(entries, e)
	}
	return entries, errs
}

// CheckName reports whether name is acceptable as a single path element
// from a listing: not empty, not "." or "..", and free of '/', NUL, CR and
// LF. A name that fails would let a server walk the mount out of its
// directory or inject commands on the control connection.
func CheckName(name string) error {
	switch name {
	case "":
		return fmt.Errorf("empty name: %w", fs.ErrInvalid)
	case ".", "..":
		return fmt.Errorf("name %q refers to a directory itself: %w", name, fs.ErrInvalid)
	}
	if strings.ContainsAny(name, "\x00\r\n") {
		return fmt.Errorf("name %q: %w", name, ErrBadName)
	}
	if strings.IndexByte(name, '/') >= 0 {
		return fmt.Errorf("name %q holds '/': %w", name, fs.ErrInvalid)
	}
	return nil
}

// span is a half-open byte range of one column of a line.
type span struct{ lo, hi int }

// parseUnix parses one `ls -l` line. The columns between the mode and the
// date differ between servers (vsftpd, pure-ftpd and proftpd align them
// differently; some omit the group or the link count), so rather than
// counting columns it looks for a "size month day time-or-year" run and
// takes the name as everything after the one separator that follows it.
func parseUnix(line []byte, now time.Time) (stage.Entry, error) {
	// Mode, links, owner, group, size and date, with room for a few more
	// columns; the name is never split, so a long name costs nothing extra.
	var f [12]span
	n := splitColumns(line, f[:])
	col := func(i int) []byte { return line[f[i].lo:f[i].hi] }
	if !isMode(col(0)) {
		return stage.Entry{}, errUnrecognized
	}
	var e stage.Entry
	switch col(0)[0] {
	case '-':
		e.Type = stage.File
	case 'd':
		e.Type = stage.Dir
	case 'l':
		e.Type = stage.Link
	case 'b', 'c', 'p', 's':
		return stage.Entry{}, errSpecial
	default:
		return stage.Entry{}, errFileType
	}
	// Try the usual shape first (mode, links, owner, group, size), then the
	// shorter and longer ones, so that an owner named like a month cannot
	// pass for the date. The first failure is reported if nothing fits.
	var err error
	for _, i := range [...]int{5, 4, 3, 2, 6, 7, 8, 9} {
		if i+2 >= n {
			continue
		}
		mon, day := month(col(i)), col(i+1)
		if mon == 0 || len(day) > 2 || !isDigits(day) || !isDigits(col(i-1)) {
			continue
		}
		d, _ := atoi(day)
		t, terr := unixTime(col(i+2), mon, int(d), now)
		size, ok := atoi(col(i - 1))
		start := f[i+2].hi + 1
		switch {
		case terr != nil:
			err = cmp.Or(err, terr)
		case !ok:
			err = cmp.Or(err, errBadSize)
		case start >= len(line):
			err = cmp.Or(err, errNoName)
		default:
			e.ModTime, e.Size = t, size
			return withName(e, string(line[start:]))
		}
	}
	return stage.Entry{}, cmp.Or(err, errNoDate)
}

// withName sets e's name, splitting "name -> target" at the first arrow for
// symlinks; a target may hold '/' but not NUL or CR.
func withName(e stage.Entry, name string) (stage.Entry, error) {
	if e.Type == stage.Link {
		i := strings.Index(name, " -> ")
		if i < 0 || i+4 == len(name) {
			return stage.Entry{}, errNoTarget
		}
		name, e.Target = name[:i], name[i+4:]
		if strings.ContainsAny(e.Target, "\x00\r") {
			return stage.Entry{}, errBadTarget
		}
	}
	e.Name = name
	return e, nil
}

// unixTime reads the last date column of a unix line, a year or "HH:MM",
// given the month and day before it.
func unixTime(b []byte, mon time.Month, day int, now time.Time) (time.Time, error) {
	if len(b) == 4 && isDigits(b) {
		y, _ := atoi(b)
		if !validDate(int(y), mon, day) {
			return time.Time{}, errBadDate
		}
		return time.Date(int(y), mon, day, 0, 0, 0, 0, time.UTC), nil
	}
	hh, mm, ok := clock(b)
	if !ok {
		return time.Time{}, errBadDate
	}
	// The most recent such date no further than futureSlack past now. The
	// loop reaches back far enough to find a 29 February.
	limit := now.Add(futureSlack)
	for y := now.Year() + 1; y >= now.Year()-8; y-- {
		if !validDate(y, mon, day) {
			continue
		}
		if t := time.Date(y, mon, day, hh, mm, 0, 0, time.UTC); !t.After(limit) {
			return t, nil
		}
	}
	return time.Time{}, errBadDate
}

// isTotal reports whether line is the "total N" header ls prints.
func isTotal(line []byte) bool {
	f := bytes.Fields(line)
	return len(f) == 2 && bytes.EqualFold(f[0], []byte("total")) && isDigits(f[1])
}

// isMode reports whether b looks like an ls mode column such as
// "drwxr-xr-x", allowing the '+', '.' or '@' some systems append for ACLs,
// security contexts or extended attributes.
func isMode(b []byte) bool {
	if len(b) == 11 && strings.IndexByte("+.@", b[10]) >= 0 {
		b = b[:10]
	}
	return len(b) == 10 && len(bytes.Trim(b[1:], "rwxsStTlL-")) == 0
}

// parseDOS parses one IIS/DOS line: "MM-DD-YY[YY] HH:MM[AM|PM] <DIR>|size
// name". IIS pads <DIR> to the width of the size column, so spaces after it
// are padding; after a size, one space separates the name.
func parseDOS(line []byte) (stage.Entry, error) {
	var f [3]span
	n := splitColumns(line, f[:])
	col := func(i int) []byte { return line[f[i].lo:f[i].hi] }
	if n < 3 {
		return stage.Entry{}, errUnrecognized
	}
	y, mon, day, ok := dosDate(col(0))
	if !ok {
		return stage.Entry{}, errUnrecognized
	}
	hh, mm, ok := dosClock(col(1))
	if !ok {
		return stage.Entry{}, errBadDate
	}
	e := stage.Entry{ModTime: time.Date(y, mon, day, hh, mm, 0, 0, time.UTC)}
	start := f[2].hi + 1
	if bytes.Equal(col(2), []byte("<DIR>")) {
		e.Type = stage.Dir
		for start < len(line) && line[start] == ' ' {
			start++
		}
	} else if e.Size, ok = atoi(col(2)); !ok {
		return stage.Entry{}, errBadSize
	}
	if start >= len(line) {
		return stage.Entry{}, errNoName
	}
	e.Name = string(line[start:])
	return e, nil
}

// dosDate reads "MM-DD-YY" or "MM-DD-YYYY". Two-digit years below 70 are
// in this century, as DOS and IIS mean them.
func dosDate(b []byte) (int, time.Month, int, bool) {
	if len(b) != 8 && len(b) != 10 || b[2] != '-' || b[5] != '-' {
		return 0, 0, 0, false
	}
	m, ok1 := atoi(b[0:2])
	d, ok2 := atoi(b[3:5])
	y, ok3 := atoi(b[6:])
	if len(b) == 8 {
		y += 1900
		if y < 1970 {
			y += 100
		}
	}
	ok := ok1 && ok2 && ok3 && validDate(int(y), time.Month(m), int(d))
	return int(y), time.Month(m), int(d), ok
}

// dosClock reads "HH:MM" in 24-hour form, or "HH:MMAM" and "HH:MMPM".
func dosClock(b []byte) (int, int, bool) {
	half := -1 // hours to add for AM (0) or PM (12); -1 on a 24-hour clock
	if n := len(b); n > 2 && bytes.EqualFold(b[n-2:], []byte("AM")) {
		half = 0
	} else if n > 2 && bytes.EqualFold(b[n-2:], []byte("PM")) {
		half = 12
	}
	if half < 0 {
		return clock(b)
	}
	hh, mm, ok := clock(b[:len(b)-2])
	return hh%12 + half, mm, ok && hh >= 1 && hh <= 12
}

// parseFacts parses one MLSD line. Facts are read one by one up to their ';'
// rather than by cutting at the first space, so a symlink target holding a
// space does not end the facts early. skip reports a cdir or pdir entry.
func parseFacts(line []byte) (e stage.Entry, skip bool, err error) {
	haveType := false
	p := 0
	for p < len(line) && line[p] != ' ' {
		rest := line[p:]
		eq, semi := bytes.IndexByte(rest, '='), bytes.IndexByte(rest, ';')
		if eq < 0 || semi < eq {
			return stage.Entry{}, false, errBadFact
		}
		name, val := rest[:eq], rest[eq+1:semi]
		p += semi + 1
		switch {
		case bytes.EqualFold(name, []byte("type")):
			haveType = true
			if e.Type, e.Target, skip, err = factType(val); err != nil {
				return stage.Entry{}, false, err
			}
		case bytes.EqualFold(name, []byte("size")):
			var ok bool
			if e.Size, ok = atoi(val); !ok {
				return stage.Entry{}, false, errBadSize
			}
		case bytes.EqualFold(name, []byte("modify")):
			// time.Parse takes an optional fraction after the seconds.
			if len(val) < 14 || !isDigits(val[:14]) {
				return stage.Entry{}, false, errBadDate
			}
			if e.ModTime, err = time.Parse("20060102150405", string(val)); err != nil {
				return stage.Entry{}, false, errBadDate
			}
		}
	}
	switch {
	case skip:
		return stage.Entry{}, true, nil
	case p+1 >= len(line):
		return stage.Entry{}, false, errNoName
	case !haveType:
		return stage.Entry{}, false, errNoType
	}
	e.Name = string(line[p+1:])
	return e, false, nil
}

// factType reads the value of an MLSD type fact.
func factType(v []byte) (t stage.EntryType, target string, skip bool, err error) {
	switch {
	case bytes.EqualFold(v, []byte("file")):
		return stage.File, "", false, nil
	case bytes.EqualFold(v, []byte("dir")):
		return stage.Dir, "", false, nil
	case bytes.EqualFold(v, []byte("cdir")), bytes.EqualFold(v, []byte("pdir")):
		return stage.Dir, "", true, nil
	}
	for _, prefix := range []string{"os.unix=slink", "os.unix=symlink"} {
		if len(v) < len(prefix) || !bytes.EqualFold(v[:len(prefix)], []byte(prefix)) {
			continue
		}
		// Some servers (pure-ftpd) name no target: the entry is still a
		// link, and the caller learns its target from a LIST instead.
		rest := v[len(prefix):]
		if len(rest) < 2 || rest[0] != ':' {
			return stage.Link, "", false, nil
		}
		if bytes.ContainsAny(rest, "\x00\r") {
			return 0, "", false, errBadTarget
		}
		return stage.Link, string(rest[1:]), false, nil
	}
	return 0, "", false, fmt.Errorf("%w %q", errFileType, v)
}

// splitColumns fills f with the spans of the first len(f) columns of line,
// separated by runs of spaces or tabs, and returns how many it found.
func splitColumns(line []byte, f []span) int {
	n, p := 0, 0
	for n < len(f) {
		for p < len(line) && (line[p] == ' ' || line[p] == '\t') {
			p++
		}
		if p == len(line) {
			break
		}
		lo := p
		for p < len(line) && line[p] != ' ' && line[p] != '\t' {
			p++
		}
		f[n] = span{lo, p}
		n++
	}
	return n
}

// month returns the month an English three-letter abbreviation names, in
// any case, or 0.
func month(b []byte) time.Month {
	const names = "janfebmaraprmayjunjulaugsepoctnovdec"
	for i := 0; len(b) == 3 && i < len(names); i += 3 {
		if bytes.EqualFold(b, []byte(names[i:i+3])) {
			return time.Month(i/3 + 1)
		}
	}
	return 0
}

// clock reads "H:MM" or "HH:MM".
func clock(b []byte) (int, int, bool) {
	i := bytes.IndexByte(b, ':')
	if i < 1 || i > 2 || len(b) != i+3 {
		return 0, 0, false
	}
	hh, ok1 := atoi(b[:i])
	mm, ok2 := atoi(b[i+1:])
	return int(hh), int(mm), ok1 && ok2 && hh < 24 && mm < 60
}

// validDate reports whether y-m-d names a real day.
func validDate(y int, m time.Month, d int) bool {
	return m >= time.January && m <= time.December && d >= 1 && d <= 31 &&
		time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Day() == d
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// atoi parses a non-empty run of ASCII digits into a non-negative int64,
// failing on anything else and on overflow.
func atoi(b []byte) (int64, bool) {
	if !isDigits(b) {
		return 0, false
	}
	var n int64
	for _, c := range b {
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
