package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// fuseType is the file system type of a mastfs mount in the mount table.
const fuseType = "fuse.mastfs"

// mountEntry is one mount of /proc/self/mountinfo.
type mountEntry struct {
	Point  string // mount point, as the kernel resolved it
	Type   string // e.g. fuse.mastfs
	Source string // e.g. mastfs:anonymous@archive.stsci.edu/anonymous/anonymous12345
}

// readMounts parses /proc/self/mountinfo.
func readMounts() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read the mount table: %w", err)
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if e, ok := parseMountInfo(sc.Text()); ok {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the mount table: %w", err)
	}
	return out, nil
}

// parseMountInfo reads one line: "36 35 98:0 /root /point opts [tags] - type source superopts".
func parseMountInfo(line string) (mountEntry, bool) {
	fields := strings.Fields(line)
	if len(fields) < 7 {
		return mountEntry{}, false
	}
	for i := 6; i+2 < len(fields); i++ {
		if fields[i] == "-" {
			return mountEntry{Point: unescapeMount(fields[4]), Type: fields[i+1], Source: unescapeMount(fields[i+2])}, true
		}
	}
	return mountEntry{}, false
}

// unescapeMount undoes the octal escapes (\040 for a space) of the mount table.
func unescapeMount(s string) string {
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

// mastfsMounts returns the mastfs mounts of this mount namespace.
func mastfsMounts() ([]mountEntry, error) {
	all, err := readMounts()
	if err != nil {
		return nil, err
	}
	var out []mountEntry
	for _, m := range all {
		if m.Type == fuseType {
			out = append(out, m)
		}
	}
	return out, nil
}

// resolvePath makes p absolute and resolves symlinks in its parent, without
// touching p itself: p may be a mount whose process has died.
func resolvePath(p string) (string, error) {
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

// mountOf returns the mastfs mount that holds the absolute path p: the one
// with the longest mount point that is p or a parent of p.
func mountOf(mounts []mountEntry, p string) (mountEntry, bool) {
	var best mountEntry
	found := false
	for _, m := range mounts {
		if (p == m.Point || strings.HasPrefix(p, strings.TrimSuffix(m.Point, "/")+"/")) &&
			(!found || len(m.Point) > len(best.Point)) {
			best, found = m, true
		}
	}
	return best, found
}
