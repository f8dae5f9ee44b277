package main

import (
	"bytes"
	"errors"
	iofs "io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mastfs/cmd/internal/mountinfo"
	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

var (
	stageOnce sync.Once
	stage     *stagegen.Stage
	stageErr  error
)

// sharedStage is one default stage for the tests of this package; tests
// that change it make their own.
func sharedStage(t *testing.T) *stagegen.Stage {
	stageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mastfs-stage-")
		if err != nil {
			stageErr = err
			return
		}
		stage, stageErr = stagegen.WriteStage(dir, stagegen.StageOptions{ManyFiles: 300})
	})
	if stageErr != nil {
		t.Fatal(stageErr)
	}
	return stage
}

// TestMountMatchesServer: ls -lR of the mount shows the server's tree,
// names, sizes, types and times, and the listings cost one LIST per directory.
func TestMountMatchesServer(t *testing.T) {
	for _, s := range ftpstest.Matrix(t) {
		t.Run(s.Name, func(t *testing.T) {
			m := startMount(t, s, "", "--remote-dir", "/anonymous")
			if err := s.ResetLogs(); err != nil {
				t.Fatal(err)
			}
			got := walkMount(t, m.dir)
			// Cold, each directory is listed once: listing ahead never lists twice.
			if cmds, err := s.Commands(); err == nil {
				dirs, lists := 1, 0
				for _, info := range got {
					if info.IsDir() {
						dirs++
					}
				}
				for _, c := range cmds {
					if u := strings.ToUpper(c); strings.HasPrefix(u, "LIST") || strings.HasPrefix(u, "MLSD") {
						lists++
					}
				}
				t.Logf("cold walk: %d listings for %d directories", lists, dirs)
				if lists > dirs || lists == 0 {
					t.Errorf("cold walk sent %d listings for %d directories", lists, dirs)
				}
			}
			want := 0
			for _, f := range s.Stage.Files {
				if !strings.HasPrefix(f.Path, "anonymous/") || f.Access != stagegen.Public {
					continue
				}
				want++
				rel := strings.TrimPrefix(f.Path, "anonymous/")
				info, ok := got[rel]
				if !ok {
					t.Errorf("%s missing from the mount", rel)
					continue
				}
				switch {
				case f.IsLink():
					if info.Mode()&iofs.ModeSymlink == 0 {
						t.Errorf("%s: mode %v, want a symlink", rel, info.Mode())
					}
					continue
				case f.IsDir():
					if !info.IsDir() || info.Mode().Perm() != 0o555 {
						t.Errorf("%s: mode %v, want dr-xr-xr-x", rel, info.Mode())
					}
					continue
				}
				if !info.Mode().IsRegular() || info.Mode().Perm() != 0o444 || info.Size() != f.Size {
					t.Errorf("%s: mode %v size %d, want -r--r--r-- size %d", rel, info.Mode(), info.Size(), f.Size)
				}
				// LIST gives minutes for recent files, days for old ones.
				mt := info.ModTime()
				if d := f.ModTime.Sub(mt); d < 0 || d >= 24*time.Hour || (mt.UTC().Hour()+mt.UTC().Minute() != 0 && d >= time.Minute) {
					t.Errorf("%s: mtime %v, server %v", rel, mt, f.ModTime)
				}
			}
			if len(got) != want {
				t.Errorf("mount shows %d entries, server has %d public ones", len(got), want)
			}
			// The real ls -lR works, and a second one is served from the kernel and listing caches.
			if err := s.ResetLogs(); err != nil {
				t.Fatal(err)
			}
			out := sh(t, "ls", "-lR", m.dir)
			if !strings.Contains(out, "latest.fits -> with space.fits") {
				t.Errorf("ls -lR does not show the symlink:\n%.2000s", out)
			}
			if cmds, err := s.Commands(); err == nil {
				for _, c := range cmds {
					if u := strings.ToUpper(c); strings.HasPrefix(u, "MDTM") || strings.HasPrefix(u, "SIZE") ||
						strings.HasPrefix(u, "LIST") || strings.HasPrefix(u, "MLSD") {
						t.Errorf("warm ls -lR sent %q: attributes must come from cached listings", c)
					}
				}
			}
		})
	}
}

// TestCopyAndRead: cp -r gives byte-identical files; python seeks and
// reads; astropy opens a FITS file with memmap and reads a card and a pixel.
func TestCopyAndRead(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	m := startMount(t, s, "", "--remote-dir", "/"+stagegen.AnonDir)
	dst := filepath.Join(t.TempDir(), "copy")
	sh(t, "cp", "-r", m.dir, dst)
	n := 0
	for _, f := range s.Stage.Files {
		rel, ok := strings.CutPrefix(f.Path, stagegen.AnonDir+"/")
		if !ok || f.IsDir() {
			continue
		}
		want := f.SHA256
		if f.IsLink() {
			target, _ := s.Stage.Lookup(path.Join(path.Dir(f.Path), f.Target))
			want = target.SHA256
		}
		if got := sha(t, filepath.Join(dst, rel)); got != want {
			t.Errorf("%s: copy differs from the server's file", rel)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("compared only %d files", n)
	}

	large := filepath.Join(m.dir, "large/large.fits")
	local, err := os.ReadFile(s.Stage.Local(stagegen.LargeFile))
	if err != nil {
		t.Fatal(err)
	}
	py := `import sys
f = open(sys.argv[1], "rb")
f.seek(int(sys.argv[2]))
sys.stdout.write(f.read(64).hex())
`
	off := int64(len(local)) / 3
	out := sh(t, "/usr/bin/python3", "-c", py, large, itoa(off))
	if want := hexOf(local[off : off+64]); strings.TrimSpace(out) != want {
		t.Errorf("python read at %d: %s, want %s", off, out, want)
	}

	astro := `import sys
from astropy.io import fits
with fits.open(sys.argv[1], memmap=True) as h:
    print(h[0].header["TELESCOP"], h[1].header["EXTNAME"], repr(float(h[1].data[3, 5])))
`
	out = sh(t, "/usr/bin/python3", "-c", astro, filepath.Join(m.dir, path.Base(stagegen.JWSTFile)))
	if !strings.HasPrefix(out, "JWST SCI ") {
		t.Errorf("astropy: %q", out)
	}
}

// TestReadOnlyAndTools: find and du work; every kind of write fails with EROFS.
func TestReadOnlyAndTools(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	m := startMount(t, s, "", "--remote-dir", "/anonymous")
	out := sh(t, "find", m.dir, "-name", "*.fits")
	if c := strings.Count(out, "\n"); c < 300 {
		t.Errorf("find listed %d fits files", c)
	}
	sh(t, "du", "-sh", m.dir)
	file := filepath.Join(m.dir, "anonymous12345", path.Base(stagegen.HSTFile))
	dir := filepath.Join(m.dir, "anonymous12345")
	for name, op := range map[string]func() error{
		"create":   func() error { return os.WriteFile(filepath.Join(dir, "new.txt"), []byte("x"), 0o644) },
		"write":    func() error { _, err := os.OpenFile(file, os.O_WRONLY, 0); return err },
		"truncate": func() error { return os.Truncate(file, 0) },
		"mkdir":    func() error { return os.Mkdir(filepath.Join(dir, "d"), 0o755) },
		"remove":   func() error { return os.Remove(file) },
		"rename":   func() error { return os.Rename(file, file+".x") },
		"chmod":    func() error { return os.Chmod(file, 0o644) },
		"symlink":  func() error { return os.Symlink("x", filepath.Join(dir, "l")) },
	} {
		if err := op(); !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", name, err)
		}
	}
}

// TestDeniedAndMissing: a directory we may not list gives EACCES, a missing
// name ENOENT, and a symlink reads as its target.
func TestDeniedAndMissing(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	m := startMount(t, s, "")
	_, err := os.ReadDir(filepath.Join(m.dir, stagegen.PrivateDir))
	if !errors.Is(err, syscall.EACCES) {
		t.Errorf("list private: %v, want EACCES", err)
	}
	_, err = os.Stat(filepath.Join(m.dir, stagegen.AnonDir, "no-such.fits"))
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat missing: %v, want ENOENT", err)
	}
	link := filepath.Join(m.dir, stagegen.LinkFile)
	target, err := os.Readlink(link)
	if err != nil || target != stagegen.LinkTarget {
		t.Errorf("readlink: %q, %v", target, err)
	}
	want, _ := s.Stage.Lookup(stagegen.SpaceFile)
	if got := sha(t, link); got != want.SHA256 {
		t.Errorf("reading the symlink does not give its target's bytes")
	}
}

// TestConcurrentReaders: two readers of one large file get the same, right bytes.
func TestConcurrentReaders(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	m := startMount(t, s, "", "--remote-dir", "/"+stagegen.AnonDir)
	f, _ := s.Stage.Lookup(stagegen.LargeFile)
	var wg sync.WaitGroup
	sums := make([]string, 3)
	for i := range sums {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sums[i] = sha(t, filepath.Join(m.dir, "large/large.fits"))
		}()
	}
	wg.Wait()
	for i, got := range sums {
		if got != f.SHA256 {
			t.Errorf("reader %d got different bytes", i)
		}
	}
}

// TestSIGTERMUnmounts: SIGTERM unmounts and mastfs exits 0.
func TestSIGTERMUnmounts(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	m := startMount(t, s, "")
	if _, err := os.ReadDir(filepath.Join(m.dir, stagegen.AnonDir)); err != nil {
		t.Fatal(err)
	}
	if err := m.stop(t); err != nil {
		t.Fatalf("stop: %v\n%s", err, m.log(t))
	}
	if mountinfo.Mounted(m.dir) {
		t.Fatal("still mounted")
	}
	if code := m.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}

// TestAccountSecrets: an account mounts with --password-stdin and sees its
// own stage; its password is nowhere: argv, environment, log, cache.
func TestAccountSecrets(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	m := startMount(t, s, s.Password+"\n", "--user", s.User, "--password-stdin")
	entries, err := os.ReadDir(filepath.Join(m.dir, s.Stage.UserDir))
	if err != nil || len(entries) == 0 {
		t.Fatalf("account's stage: %v, %v", entries, err)
	}
	if got := sha(t, filepath.Join(m.dir, s.Stage.UserFile)); got == "" {
		t.Fatal("no bytes")
	}
	pid := m.cmd.Process.Pid
	for _, f := range []string{"cmdline", "environ"} {
		b, err := os.ReadFile(filepath.Join("/proc", itoa(int64(pid)), f))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(s.Password)) {
			t.Errorf("password visible in /proc/%d/%s", pid, f)
		}
	}
	_ = m.stop(t)
	if strings.Contains(m.log(t), s.Password) {
		t.Error("password in the log")
	}
	_ = filepath.WalkDir(m.cacheDir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(s.Password)) {
			t.Errorf("password in cache file %s", p)
		}
		return nil
	})
	if out, err := exec.Command("grep", "-r", "-l", s.Password, m.cacheDir).CombinedOutput(); err == nil {
		t.Errorf("grep found the password in the cache: %s", out)
	}
}
