package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"mastfs/ftps/ftpstest"
)

// What a hostile or broken server can send, through a real mount: names
// no local file system holds, lines that do not parse, huge listings,
// files that change while they are read, symlinks that loop or lead out.
// Nothing may crash mastfs, leave the cache directory, or come back as
// wrong bytes; each refusal is logged.

// listing builds a directory listing in LIST (ls -l) or MLSD form.
type listing struct {
	mlsd bool
	b    bytes.Buffer
}

func (l *listing) file(name string, size int64) *listing {
	if l.mlsd {
		fmt.Fprintf(&l.b, "type=file;size=%d;modify=20200102030405; %s\r\n", size, name)
	} else {
		fmt.Fprintf(&l.b, "-rw-r--r--   1 ftp      ftp      %8d Jan 02  2020 %s\r\n", size, name)
	}
	return l
}

func (l *listing) dir(name string) *listing {
	if l.mlsd {
		fmt.Fprintf(&l.b, "type=dir;modify=20200102030405; %s\r\n", name)
	} else {
		fmt.Fprintf(&l.b, "drwxr-xr-x   2 ftp      ftp          4096 Jan 02  2020 %s\r\n", name)
	}
	return l
}

func (l *listing) link(name, target string) *listing {
	if l.mlsd {
		fmt.Fprintf(&l.b, "type=OS.unix=slink:%s;modify=20200102030405; %s\r\n", target, name)
	} else {
		fmt.Fprintf(&l.b, "lrwxrwxrwx   1 ftp      ftp      %8d Jan 02  2020 %s -> %s\r\n", len(target), name, target)
	}
	return l
}

// raw adds a line as is, CRLF added.
func (l *listing) raw(line string) *listing {
	l.b.WriteString(line + "\r\n")
	return l
}

// content is the deterministic content of a hostile file.
func content(name string, size int) []byte {
	out := make([]byte, 0, size+32)
	h := sha256.Sum256([]byte(name))
	for len(out) < size {
		out = append(out, h[:]...)
		h = sha256.Sum256(h[:])
	}
	return out[:size]
}

// TestHostileNames: a listing with control characters, 255-, 1000- and
// 2000-byte names, '/', NUL, CR, "." and "..", lines that do not parse,
// a size no file has, and symlinks that loop or lead out of the mount.
// The good names are served with their bytes; the bad ones are left out,
// each with a log line; the directory stays readable.
func TestHostileNames(t *testing.T) {
	for _, mlsd := range []bool{false, true} {
		t.Run(map[bool]string{false: "LIST", true: "MLSD"}[mlsd], func(t *testing.T) { hostileNames(t, mlsd) })
	}
}

func hostileNames(t *testing.T, mlsd bool) {
	h := ftpstest.StartHostile(t, ftpstest.HostileOptions{MLSD: mlsd})
	good := []string{
		"ok.fits",
		"esc\x1b[31mred\x1b[0m.fits",
		"tab\there.fits",
		"bell\a.fits",
		"del\x7f.fits",
		"back\\slash.fits",
		"bad\xff\xfeutf8.fits",
		"-dash.fits",
		" lead space.fits",
		strings.Repeat("n", 250) + ".fits", // 255 bytes: the most a Linux name holds
	}
	tooLong := []string{strings.Repeat("L", 995) + ".fits", strings.Repeat("M", 1995) + ".fits"}
	l := &listing{mlsd: mlsd}
	for _, name := range append(append([]string{}, good...), tooLong...) {
		data := content(name, 3000+len(name))
		l.file(name, int64(len(data)))
		h.SetFile("/stage/"+name, data)
	}
	// Refused: each is logged, none is shown.
	refused := []string{"a/b.fits", "nul\x00name.fits", "cr\rname.fits"}
	for _, name := range refused {
		l.file(name, 10)
	}
	l.file(".", 0).file("..", 0).dir(".").dir("..")
	var garbage []string
	if mlsd {
		garbage = []string{"this is not a listing line", "type=file;size=12;modify=2020; x.fits",
			"type=file;size=notasize; y.fits", "type=weird;size=1; z.fits", "size=1; notype.fits",
			"type=file;size=99999999999999999999; big.fits", "type=file;size=1;"}
	} else {
		garbage = []string{"this is not a listing line", "drwxr-xr-x", "-rw-r--r-- 1 ftp ftp notasize Jan 02 2020 x.fits",
			"-rw-r--r-- 1 ftp ftp 99999999999999999999 Jan 02 2020 big.fits", "-rw-r--r-- 1 ftp ftp 10 Foo 02 2020 y.fits",
			"crw-r--r-- 1 ftp ftp 1, 3 Jan 02 2020 device", "lrwxrwxrwx 1 ftp ftp 4 Jan 02 2020 notarget"}
		l.raw("total 12")
	}
	for _, g := range garbage {
		l.raw(g)
	}
	// A size no file has, for a file the server holds a few bytes of.
	l.file("huge.fits", 1<<63-1)
	h.SetFile("/stage/huge.fits", []byte("short"))
	// Links: loops, out of the mount, and two that stay inside.
	l.link("loop1", "loop2").link("loop2", "loop1").link("self", "self")
	l.link("out", "../../../../etc/passwd").link("abs", "/etc/passwd").link("parent", "..")
	l.link("good", "ok.fits").link("deep", "sub/inner.fits")
	l.dir("sub")
	h.SetList("/stage", l.b.Bytes())
	sub := &listing{mlsd: mlsd}
	sub.file("inner.fits", 100).link("up", "../ok.fits")
	h.SetList("/stage/sub", sub.b.Bytes())
	h.SetFile("/stage/sub/inner.fits", content("inner", 100))

	m := startMastfs(t, mountSpec{host: h.Host, port: h.Port, caFile: h.CAFile, args: []string{"--remote-dir", "/stage"}})

	ents, err := os.ReadDir(m.dir)
	if err != nil {
		t.Fatalf("readdir of a directory with hostile names: %v\n%s", err, lastLogLines(m.log(t), 20))
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	want := append(append([]string{}, good...), "huge.fits", "loop1", "loop2", "self", "out", "abs", "parent", "good", "deep", "sub")
	sort.Strings(want)
	if strings.Join(names, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("readdir:\n got %q\nwant %q", names, want)
	}
	for _, name := range good {
		got, err := os.ReadFile(filepath.Join(m.dir, name))
		if want := content(name, 3000+len(name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%q: %d bytes, %v; want its %d bytes", name, len(got), err, len(want))
		}
	}
	for _, name := range tooLong {
		if _, err := os.Stat(filepath.Join(m.dir, name)); err == nil {
			t.Errorf("a %d-byte name was served", len(name))
		}
	}

	// A size the server does not honour: EIO, promptly, and mastfs lives.
	_, err = timed(t, "read of a file shorter than listed", 30*time.Second, func() error {
		f, err := os.Open(filepath.Join(m.dir, "huge.fits"))
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.ReadAt(make([]byte, 4096), 0)
		return err
	})
	if !isEIO(err) {
		t.Errorf("read of a file shorter than its listing: %v, want EIO", err)
	}

	// Links.
	for _, name := range []string{"loop1", "loop2", "self"} {
		if _, err := os.Stat(filepath.Join(m.dir, name)); !errors.Is(err, syscall.ELOOP) {
			t.Errorf("stat %s: %v, want ELOOP", name, err)
		}
	}
	for _, name := range []string{"out", "abs", "parent"} {
		if target, err := os.Readlink(filepath.Join(m.dir, name)); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("readlink %s: %q, %v; want ENOENT for a link out of the mount", name, target, err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(m.dir, "good")); err != nil || !bytes.Equal(got, content("ok.fits", 3007)) {
		t.Errorf("good -> ok.fits: %d bytes, %v", len(got), err)
	}
	if got, err := os.ReadFile(filepath.Join(m.dir, "deep")); err != nil || !bytes.Equal(got, content("inner", 100)) {
		t.Errorf("deep -> sub/inner.fits: %d bytes, %v", len(got), err)
	}
	if got, err := os.ReadFile(filepath.Join(m.dir, "sub", "up")); err != nil || !bytes.Equal(got, content("ok.fits", 3007)) {
		t.Errorf("sub/up -> ../ok.fits: %d bytes, %v", len(got), err)
	}

	if !m.alive() {
		t.Fatalf("mastfs died\n%s", m.log(t))
	}
	_ = m.stop(t)
	log := m.log(t)
	skipped := strings.Count(log, "listing entry skipped")
	if want := len(refused) + len(garbage); skipped < want {
		t.Errorf("%d listing lines logged as skipped, want at least %d:\n%s", skipped, want, log)
	}
	if n := strings.Count(log, "name too long"); n < len(tooLong) {
		t.Errorf("%d long names logged, want %d", n, len(tooLong))
	}
	if !strings.Contains(log, "symlink leads outside the mount") {
		t.Error("no log line for the links out of the mount")
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "outside the mount") {
			t.Log(line)
		}
		if strings.ContainsAny(line, "\x1b\a\x00\r\t") {
			t.Errorf("a raw control character reached the log: %q", line)
			break
		}
	}
	checkCacheTree(t, m)
}

// checkCacheTree checks that everything under the cache directory has a
// name mastfs made (hex digests, chunk numbers, fixed names) and that
// nothing appeared beside it.
func checkCacheTree(t *testing.T, m *mount) {
	t.Helper()
	ok := regexp.MustCompile(`^(v2|files|records|listing|lock|[0-9a-f]{2}|[0-9a-f]{64}(\.data|\.index)?)$`)
	err := filepath.WalkDir(m.cacheDir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != m.cacheDir && !ok.MatchString(d.Name()) {
			t.Errorf("cache holds %q: not a name mastfs makes", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Dir(m.cacheDir)
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		switch e.Name() {
		case "mnt", "cache", "mastfs.log", "mastfs.log.out":
		default:
			t.Errorf("%s appeared beside the cache", e.Name())
		}
	}
}

// TestHostileHugeListing: a directory of 100,000 entries lists in full,
// in seconds, and its files are found.
func TestHostileHugeListing(t *testing.T) {
	h := ftpstest.StartHostile(t, ftpstest.HostileOptions{})
	const n = 100_000
	l := &listing{}
	for i := range n {
		l.file(fmt.Sprintf("obs%06d_raw.fits", i), int64(i%5000))
	}
	h.SetList("/big", l.b.Bytes())
	h.SetFile("/big/obs099999_raw.fits", content("last", 99999%5000))
	m := startMastfs(t, mountSpec{host: h.Host, port: h.Port, caFile: h.CAFile, args: []string{"--remote-dir", "/big"}})
	var names []string
	took, err := timed(t, "readdir of 100,000 entries", 2*time.Minute, func() error {
		f, err := os.Open(m.dir)
		if err != nil {
			return err
		}
		defer f.Close()
		names, err = f.Readdirnames(-1)
		return err
	})
	if err != nil || len(names) != n {
		t.Fatalf("readdir: %d names, %v; want %d", len(names), err, n)
	}
	t.Logf("readdir of %d entries: %v (listing %d bytes)", n, took.Round(time.Millisecond), l.b.Len())
	if took > 30*time.Second {
		t.Errorf("readdir of %d entries took %v", n, took)
	}
	got, err := os.ReadFile(filepath.Join(m.dir, "obs099999_raw.fits"))
	if err != nil || !bytes.Equal(got, content("last", 99999%5000)) {
		t.Errorf("last file: %d bytes, %v", len(got), err)
	}
	if st, err := os.Stat(filepath.Join(m.dir, "obs054321_raw.fits")); err != nil || st.Size() != 54321%5000 {
		t.Errorf("stat: %v, %v", st, err)
	}
}

// TestHostileChangingFile: a file that grows on the server is served as
// the listing describes it (its first bytes, its listed size); one that
// shrinks mid-read gives EIO, never bytes it does not have; once the
// listing shows the change, the new content is served in full.
func TestHostileChangingFile(t *testing.T) {
	h := ftpstest.StartHostile(t, ftpstest.HostileOptions{MLSD: true})
	// Larger than what socket buffers and read-ahead hold before the change
	// reaches the stream.
	const size = 24 << 20
	orig := content("v1", size)
	grown := append(append([]byte{}, orig...), content("more", 1<<20)...)
	listed := func(growSize, shrinkSize int, mtime string) []byte {
		return []byte(fmt.Sprintf("type=file;size=%d;modify=%s; grow.fits\r\ntype=file;size=%d;modify=%s; shrink.fits\r\n",
			growSize, mtime, shrinkSize, mtime))
	}
	h.SetList("/c", listed(size, size, "20240101000000"))
	h.SetFile("/c/grow.fits", orig)
	h.SetFile("/c/shrink.fits", orig)
	m := startMastfs(t, mountSpec{host: h.Host, port: h.Port, caFile: h.CAFile, args: []string{"--remote-dir", "/c", "--dir-cache-ttl", "1s", "--chunk-size", "1MiB"}})

	// Grows after listing: the listed size, the old bytes.
	if _, err := os.Stat(filepath.Join(m.dir, "grow.fits")); err != nil {
		t.Fatal(err)
	}
	h.SetFile("/c/grow.fits", grown)
	got, err := os.ReadFile(filepath.Join(m.dir, "grow.fits"))
	if err != nil || !bytes.Equal(got, orig) {
		t.Fatalf("grown file: %d bytes, %v; want the %d listed", len(got), err, size)
	}

	// Shrinks mid-read: what comes back is right, then EIO.
	f, err := os.Open(filepath.Join(m.dir, "shrink.fits"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 4096)
	if _, err := f.ReadAt(head, 0); err != nil || !bytes.Equal(head, orig[:len(head)]) {
		t.Fatalf("first bytes: %v", err)
	}
	short := orig[:2<<20+100]
	h.SetFile("/c/shrink.fits", short)
	var read []byte
	_, err = timed(t, "read of a shrunk file", 60*time.Second, func() error {
		buf := make([]byte, 128<<10)
		for off := int64(1 << 20); off < size; off += int64(len(buf)) {
			n, err := f.ReadAt(buf, off)
			read = append(read, buf[:n]...)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if !isEIO(err) {
		t.Errorf("read past the end of a shrunk file: %v, want EIO", err)
	}
	// Bytes fetched before the change reached the stream are the listed
	// version's, and right; none may come from anywhere else.
	if !bytes.Equal(read, orig[1<<20:1<<20+len(read)]) {
		t.Errorf("read %d bytes after the first MiB of a file shrunk to %d: not its bytes", len(read), len(short))
	}
	t.Logf("shrunk to %d bytes: read %d bytes from 1 MiB, then %v", len(short), len(read), err)
	f.Close()

	// The listing catches up: new size, new time, new bytes in full.
	changed := content("v2", len(short))
	h.SetFile("/c/shrink.fits", changed)
	h.SetList("/c", listed(len(grown), len(changed), "20240202000000"))
	time.Sleep(1500 * time.Millisecond)
	for name, want := range map[string][]byte{"grow.fits": grown, "shrink.fits": changed} {
		got, err := os.ReadFile(filepath.Join(m.dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s after the listing changed: %d bytes, %v; want its %d new bytes", name, len(got), err, len(want))
		}
	}
	if !m.alive() {
		t.Fatal("mastfs died")
	}
}
