package ftpsd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"
)

// Backend is the read-only tree a Server serves. Every path it is given is
// clean and absolute ("/", "/a/b"). An error that wraps fs.ErrPermission
// is answered "550 Permission denied", ErrNotDirectory 501,
// errors.ErrUnsupported 502, any other "550 No such file or directory".
type Backend interface {
	// Stat describes p, following symbolic links. CWD, SIZE, MDTM and
	// RETR ask it first.
	Stat(p string) (fs.FileInfo, error)
	// List returns what a listing of p sends: for LIST and NLST of a
	// directory or a file, MLSD of a directory, or MLST of p itself, whose
	// lines go into the reply on the control connection.
	List(p, verb string) (Listing, error)
	// Open returns p's bytes from off to the end.
	Open(p string, off int64) (io.ReadCloser, error)
}

// Listing writes the body of a listing once the data connection is up. It
// returns when done, or with the error of the write that failed (the
// client hung up).
type Listing func(w io.Writer) error

// ErrNotDirectory is what a Backend returns for MLSD of a file.
var ErrNotDirectory = errors.New("not a directory")

// dirBackend serves a local directory. The os.Root refuses paths, and
// symlinks, that lead out of it.
type dirBackend struct {
	root *os.Root
}

func openDir(dir string) (*dirBackend, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &dirBackend{root: root}, nil
}

func (d *dirBackend) Close() error { return d.root.Close() }

// rel is p as a name under the root.
func rel(p string) string {
	if r := strings.TrimPrefix(p, "/"); r != "" {
		return r
	}
	return "."
}

func (d *dirBackend) Stat(p string) (fs.FileInfo, error) { return d.root.Stat(rel(p)) }

func (d *dirBackend) Open(p string, off int64) (io.ReadCloser, error) {
	f, err := d.root.Open(rel(p))
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (d *dirBackend) List(p, verb string) (Listing, error) {
	r := rel(p)
	var buf bytes.Buffer
	if verb == "MLST" {
		lst, err := d.root.Lstat(r)
		if err != nil {
			return nil, err
		}
		e := d.entryOf(r, p, lst)
		buf.WriteString(facts(e.info, e.target) + " " + p + "\r\n")
		return bufferListing(&buf), nil
	}
	st, err := d.root.Stat(r)
	if err != nil {
		return nil, err
	}
	var entries []entry
	switch {
	case st.IsDir():
		if entries, err = d.readDir(r); err != nil {
			return nil, err
		}
	case verb == "MLSD":
		return nil, fmt.Errorf("MLSD %s: %w", p, ErrNotDirectory)
	default:
		lst, err := d.root.Lstat(r)
		if err != nil {
			return nil, err
		}
		entries = []entry{d.entryOf(r, path.Base(p), lst)}
	}
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
	return bufferListing(&buf), nil
}

func bufferListing(b *bytes.Buffer) Listing {
	return func(w io.Writer) error {
		_, err := w.Write(b.Bytes())
		return err
	}
}

// entry is one name of a listing with its own (not its target's) attributes.
type entry struct {
	name   string
	info   fs.FileInfo
	target string // for symlinks
}

// readDir lists a directory, sorted by name. Names that would break a
// listing line (CR, LF) are left out.
func (d *dirBackend) readDir(r string) ([]entry, error) {
	f, err := d.root.Open(r)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	des, err := f.ReadDir(-1)
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
		out = append(out, d.entryOf(path.Join(r, de.Name()), de.Name(), info))
	}
	return out, nil
}

func (d *dirBackend) entryOf(r, name string, info fs.FileInfo) entry {
	e := entry{name: name, info: info}
	if info.Mode()&fs.ModeSymlink != 0 {
		e.target, _ = d.root.Readlink(r)
	}
	return e
}
