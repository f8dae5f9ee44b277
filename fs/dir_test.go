package fs

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"mastfs/fs/stage"
)

// Opendir and readdir always reach the daemon, so these count the
// listings the tree itself asks for, on its own clock.
func TestListingTTL(t *testing.T) {
	l, c, clk := newLister(), newContents(), newClock()
	l.set("/", file("a", 1))
	mnt, _ := mountTree(t, l, c, Options{DirTTL: time.Minute, Clock: clk.Now})
	names(t, mnt)
	names(t, mnt)
	if n := l.count("/"); n != 1 {
		t.Fatalf("two readdirs within the TTL listed %d times, want 1", n)
	}
	clk.advance(time.Minute - time.Second)
	names(t, mnt)
	if n := l.count("/"); n != 1 {
		t.Fatalf("a readdir a second before the TTL listed again (%d listings)", n)
	}
	clk.advance(time.Second)
	l.set("/", file("a", 1), file("b", 2))
	if got := names(t, mnt); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("past the TTL the root lists %v", got)
	}
	if n := l.count("/"); n != 2 {
		t.Fatalf("past the TTL: %d listings, want 2", n)
	}
}

func TestStaleListingServedWhileUnreachable(t *testing.T) {
	for _, onDisk := range []bool{true, false} {
		t.Run(fmt.Sprintf("kept_on_disk=%v", onDisk), func(t *testing.T) {
			l, c, clk := newLister(), newContents(), newClock()
			l.set("/", file("a", 1), file("b", 2))
			opts := Options{DirTTL: time.Minute, NegativeTTL: 5 * time.Second, Clock: clk.Now}
			mnt, _ := mountTree(t, l, c, opts)
			names(t, mnt)
			if !onDisk {
				c.mu.Lock()
				clear(c.records)
				c.mu.Unlock()
			}
			l.failWith("/", errors.New("connection refused"))
			clk.advance(time.Minute)
			if got := names(t, mnt); !slices.Equal(got, []string{"a", "b"}) {
				t.Fatalf("unreachable: root lists %v, want the kept a, b", got)
			}
			if n := l.count("/"); n != 2 {
				t.Fatalf("first access past the TTL asked the server %d times in all, want 2", n)
			}
			// The kept copy is trusted for NegativeTTL, then served at once
			// while the server is asked again in the background.
			names(t, mnt)
			if n := l.count("/"); n != 2 {
				t.Fatalf("within NegativeTTL of a failure the server was asked again (%d)", n)
			}
			clk.advance(5 * time.Second)
			if got := names(t, mnt); !slices.Equal(got, []string{"a", "b"}) {
				t.Fatalf("still unreachable: root lists %v", got)
			}
			eventually(t, "a background listing", func() bool { return l.count("/") == 3 })
			l.failWith("/", nil)
			l.set("/", file("a", 1))
			clk.advance(5 * time.Second)
			names(t, mnt) // serves the kept copy, asks in the background
			eventually(t, "the server's answer replaces the kept copy", func() bool {
				// The background listing that failed may still have been on
				// its way when the server came back; its failure is trusted
				// for NegativeTTL, so each look moves the clock past it.
				clk.advance(5 * time.Second)
				return slices.Equal(names(t, mnt), []string{"a"})
			})
		})
	}
}

func TestVanishedEntryForgotten(t *testing.T) {
	l, c, clk := newLister(), newContents(), newClock()
	l.set("/", file("a", 1), file("b", 2))
	mnt, _ := mountTree(t, l, c, Options{DirTTL: time.Minute, Clock: clk.Now})
	names(t, mnt)
	l.set("/", file("a", 1))
	clk.advance(time.Minute)
	if got := names(t, mnt); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("root lists %v", got)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Equal(c.forgot, []string{"/b"}) {
		t.Fatalf("forgot %v, want [/b]", c.forgot)
	}
}

func TestListingAhead(t *testing.T) {
	l, c := newLister(), newContents()
	l.set("/", dir("a"), dir("b"), dir("c"), file("f", 1))
	for _, d := range []string{"/a", "/b", "/c"} {
		l.set(d, file("x", 1))
	}
	mnt, _ := mountTree(t, l, c, Options{ListAhead: 2})
	names(t, mnt)
	eventually(t, "subdirectories listed ahead", func() bool {
		return l.count("/a") == 1 && l.count("/b") == 1 && l.count("/c") == 1
	})
	for _, d := range []string{"a", "b", "c"} {
		if got := names(t, filepath.Join(mnt, d)); !slices.Equal(got, []string{"x"}) {
			t.Fatalf("%s lists %v", d, got)
		}
	}
	for _, d := range []string{"/a", "/b", "/c"} {
		if n := l.count(d); n != 1 {
			t.Fatalf("%s listed %d times; the listing made ahead should serve it", d, n)
		}
	}
}

func TestListingAheadFollowsBudget(t *testing.T) {
	l, c := newLister(), newContents()
	subs := []stage.Entry{}
	for i := range 6 {
		subs = append(subs, dir(fmt.Sprintf("d%d", i)))
	}
	l.set("/", subs...)
	for _, e := range subs {
		l.set("/" + e.Name)
	}
	budget := 1
	var mu = &l.mu // the budget changes under the lister's lock
	opts := Options{ListAhead: 8, Budget: func() int { mu.Lock(); defer mu.Unlock(); return budget }}
	mnt, _ := mountTree(t, l, c, opts)

	// One connection: none is spared for listing ahead.
	names(t, mnt)
	for _, e := range subs {
		if n := l.count("/" + e.Name); n != 0 {
			t.Fatalf("budget 1: %s listed ahead", e.Name)
		}
	}

	// Three connections: two listings ahead at once, never more.
	gate := make(chan struct{})
	l.mu.Lock()
	budget, l.gate = 3, gate
	l.mu.Unlock()
	names(t, mnt)
	eventually(t, "two listings ahead in flight", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.inflight == 2
	})
	close(gate)
	eventually(t, "every subdirectory listed ahead", func() bool {
		for _, e := range subs {
			if l.count("/"+e.Name) != 1 {
				return false
			}
		}
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxIn != 2 {
		t.Fatalf("budget 3: %d listings ahead at once, want 2", l.maxIn)
	}
}

func TestErrnoMapping(t *testing.T) {
	l, c := newLister(), newContents()
	bad := file("bad", 10)
	// "unreadable" is listed by its parent, yet its own listing says it is
	// missing, as vsftpd answers for a directory the user may not read.
	l.set("/", dir("denied"), dir("unreadable"), dir("broken"), dir("interrupted"), bad)
	l.failWith("/denied", iofs.ErrPermission)
	l.failWith("/broken", errors.New("connection reset by peer"))
	l.failWith("/interrupted", context.Canceled)
	c.fail["/bad"] = errors.New("remote file ended early")
	mnt, _ := mountTree(t, l, c, Options{})
	for _, tc := range []struct {
		dir  string
		want syscall.Errno
	}{
		{"denied", syscall.EACCES},
		{"unreadable", syscall.EACCES},
		{"broken", syscall.EIO},
		{"interrupted", syscall.EINTR},
	} {
		// syscall.Open: os.Open would retry the EINTR.
		fd, err := syscall.Open(filepath.Join(mnt, tc.dir), syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err == nil {
			syscall.Close(fd)
		}
		if errnoOf(err) != tc.want {
			t.Errorf("open %s: %v, want %v", tc.dir, err, tc.want)
		}
	}
	if n := l.count("/"); n != 1 {
		t.Errorf("the root was listed %d times; telling denied from missing needs no listing", n)
	}
	if _, err := os.Stat(filepath.Join(mnt, "missing")); errnoOf(err) != syscall.ENOENT {
		t.Errorf("stat of a name not listed: %v, want ENOENT", err)
	}
	if _, err := os.ReadFile(filepath.Join(mnt, "bad")); errnoOf(err) != syscall.EIO {
		t.Errorf("read of a file the server cannot send: %v, want EIO", err)
	}
}

func TestLinks(t *testing.T) {
	l, c := newLister(), newContents()
	target := file("with space.fits", 5)
	l.set("/stage", target,
		stage.Entry{Name: "latest.fits", Type: stage.Link, Target: "with space.fits"},
		stage.Entry{Name: "abs", Type: stage.Link, Target: "/stage/with space.fits"},
		stage.Entry{Name: "out", Type: stage.Link, Target: "../../etc/passwd"},
		stage.Entry{Name: "loop", Type: stage.Link, Target: "loop"})
	c.put("/stage/with space.fits", target, []byte("fits!"))
	mnt, _ := mountTree(t, l, c, Options{RemoteDir: "/stage"})
	for _, name := range []string{"latest.fits", "abs"} {
		if got := readFile(t, filepath.Join(mnt, name)); string(got) != "fits!" {
			t.Errorf("%s reads %q", name, got)
		}
	}
	if got, err := os.Readlink(filepath.Join(mnt, "abs")); err != nil || got != "with space.fits" {
		t.Errorf("readlink abs = %q, %v", got, err)
	}
	if _, err := os.Readlink(filepath.Join(mnt, "out")); errnoOf(err) != syscall.ENOENT {
		t.Errorf("readlink of a link out of the mount: %v, want ENOENT", err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "loop")); errnoOf(err) != syscall.ELOOP {
		t.Errorf("stat of a loop: %v, want ELOOP", err)
	}
	fi, err := os.Lstat(filepath.Join(mnt, "latest.fits"))
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("lstat latest.fits: %v, %v", fi, err)
	}
}
