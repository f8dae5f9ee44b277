// Package mountinfo reads the kernel's mount table, /proc/self/mountinfo:
// the one place mastfs's commands, tests and benchmarks learn what is
// mounted where.
package mountinfo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Mount is one line of the mount table.
type Mount struct {
	Point        string // mount point, as the kernel resolved it
	Type         string // e.g. fuse.mastfs
	Source       string // e.g. mastfs:anonymous@archive.stsci.edu/anonymous/anonymous12345
	SuperOptions string // the file system's own options, e.g. ro,user_id=0,group_id=0
}

// table is the mount table of this process's mount namespace.
const table = "/proc/self/mountinfo"

// Read returns every mount of this mount namespace.
func Read() ([]Mount, error) {
	f, err := os.Open(table)
	if err != nil {
		return nil, fmt.Errorf("read the mount table: %w", err)
	}
	defer f.Close()
	mounts, err := parseAll(f)
	if err != nil {
		return nil, fmt.Errorf("read the mount table: %w", err)
	}
	return mounts, nil
}

func parseAll(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m, ok := Parse(sc.Text()); ok {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

// Parse reads one line: "36 35 98:0 /root /point opts [tags] - type source superopts".
func Parse(line string) (Mount, bool) {
	fields := strings.Fields(line)
	if len(fields) < 7 {
		return Mount{}, false
	}
	for i := 6; i+2 < len(fields); i++ {
		if fields[i] == "-" {
			m := Mount{Point: unescape(fields[4]), Type: fields[i+1], Source: unescape(fields[i+2])}
			if i+3 < len(fields) {
				m.SuperOptions = fields[i+3]
			}
			return m, true
		}
	}
	return Mount{}, false
}

// unescape undoes the octal escapes (\040 for a space) of the mount table.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// OfType returns the mounts of one file system type, e.g. fuse.mastfs.
func OfType(fsType string) ([]Mount, error) {
	all, err := Read()
	if err != nil {
		return nil, err
	}
	var out []Mount
	for _, m := range all {
		if m.Type == fsType {
			out = append(out, m)
		}
	}
	return out, nil
}

// At returns the mount whose mount point is dir, the last one mounted
// there if several are stacked.
func At(dir string) (Mount, bool) {
	all, err := Read()
	if err != nil {
		return Mount{}, false
	}
	var found Mount
	ok := false
	for _, m := range all {
		if m.Point == dir {
			found, ok = m, true
		}
	}
	return found, ok
}

// Mounted reports whether dir is a mount point.
func Mounted(dir string) bool {
	_, ok := At(dir)
	return ok
}

// Holding returns the mount among mounts that holds the absolute path p:
// the one with the longest mount point that is p or a parent of p.
func Holding(mounts []Mount, p string) (Mount, bool) {
	var best Mount
	found := false
	for _, m := range mounts {
		if (p == m.Point || strings.HasPrefix(p, strings.TrimSuffix(m.Point, "/")+"/")) &&
			(!found || len(m.Point) > len(best.Point)) {
			best, found = m, true
		}
	}
	return best, found
}

// Resolve makes p absolute and resolves symlinks in its parent, without
// touching p itself: p may be a mount whose process has died.
func Resolve(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return abs, nil
	}
	return filepath.Join(dir, filepath.Base(abs)), nil
}
