package fs

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	iofs "io/fs"
)

// A directory the user may traverse but not read: its listing is refused
// or empty, yet names in it are reached by their path.
func TestTraverseOnly(t *testing.T) {
	for _, kind := range []string{"denied", "empty"} {
		t.Run(kind, func(t *testing.T) {
			l, c, clk := newLister(), newContents(), newClock()
			if kind == "denied" {
				l.failWith("/", iofs.ErrPermission)
			} else {
				l.set("/")
			}
			l.set("/anonymous")
			l.set("/anonymous/anonymous777", file("x.fits", 3))
			c.put("/anonymous/anonymous777/x.fits", file("x.fits", 3), []byte("abc"))
			opts := Options{DirTTL: time.Minute, NegativeTTL: 5 * time.Second, Clock: clk.Now}
			mnt, root := mountTree(t, l, c, opts)

			if got := readFile(t, filepath.Join(mnt, "anonymous/anonymous777/x.fits")); string(got) != "abc" {
				t.Fatalf("x.fits reads %q", got)
			}
			if got := names(t, filepath.Join(mnt, "anonymous/anonymous777")); !slices.Equal(got, []string{"x.fits"}) {
				t.Fatalf("the stage lists %v", got)
			}
			for dir, want := range map[string]int{"/": 1, "/anonymous": 1, "/anonymous/anonymous777": 1} {
				if n := l.count(dir); n != want {
					t.Errorf("%s listed %d times, want %d", dir, n, want)
				}
			}

			// A missing name costs one listing by its path, remembered
			// for NegativeTTL.
			missing := filepath.Join(mnt, "nope")
			if _, err := os.Stat(missing); errnoOf(err) != syscall.ENOENT {
				t.Fatalf("stat nope: %v, want ENOENT", err)
			}
			if n := l.count("/nope"); n != 1 {
				t.Fatalf("nope looked up %d times, want 1", n)
			}
			root.NotifyEntry("nope") // the kernel forgets; the tree does not
			if _, err := os.Stat(missing); errnoOf(err) != syscall.ENOENT {
				t.Fatalf("stat nope again: %v", err)
			}
			if n := l.count("/nope"); n != 1 {
				t.Fatalf("within NegativeTTL nope was looked up again (%d)", n)
			}
			clk.advance(5 * time.Second)
			root.NotifyEntry("nope")
			if _, err := os.Stat(missing); errnoOf(err) != syscall.ENOENT {
				t.Fatalf("stat nope past NegativeTTL: %v", err)
			}
			if n := l.count("/nope"); n != 2 {
				t.Fatalf("past NegativeTTL nope looked up %d times, want 2", n)
			}

			// A found directory is remembered for DirTTL.
			root.NotifyEntry("anonymous")
			if _, err := os.Stat(filepath.Join(mnt, "anonymous")); err != nil {
				t.Fatal(err)
			}
			if n := l.count("/anonymous"); n != 1 {
				t.Fatalf("within DirTTL anonymous was looked up again (%d)", n)
			}

			// A name the server refuses to list is there, closed.
			l.failWith("/closed", iofs.ErrPermission)
			fi, err := os.Stat(filepath.Join(mnt, "closed"))
			if err != nil || !fi.IsDir() {
				t.Fatalf("stat closed: %v, %v; want a directory", fi, err)
			}
			if _, err := os.ReadDir(filepath.Join(mnt, "closed")); errnoOf(err) != syscall.EACCES {
				t.Fatalf("readdir closed: %v, want EACCES", err)
			}

			_, err = os.ReadDir(mnt)
			switch kind {
			case "denied":
				if errnoOf(err) != syscall.EACCES {
					t.Fatalf("readdir of a refused listing: %v, want EACCES", err)
				}
			default:
				if err != nil {
					t.Fatalf("readdir of an empty listing: %v", err)
				}
			}
			if n := l.count("/"); n != 1 {
				t.Fatalf("root listed %d times within its TTL, want 1", n)
			}
		})
	}
}

// A name missing from a readable listing that shows names is missing:
// no round trip. A listed name costs none either.
func TestOrdinaryNamesCostNothing(t *testing.T) {
	l, c := newLister(), newContents()
	l.set("/", dir("stage"), file("a", 1))
	l.set("/stage", file("b", 1))
	mnt, _ := mountTree(t, l, c, Options{ListAhead: -1})
	for _, p := range []string{"a", "stage", "stage/b"} {
		if _, err := os.Stat(filepath.Join(mnt, p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"nope", "stage/nope"} {
		if _, err := os.Stat(filepath.Join(mnt, p)); errnoOf(err) != syscall.ENOENT {
			t.Fatalf("stat %s: %v, want ENOENT", p, err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	want := map[string]int{"/": 1, "/stage": 1}
	if len(l.calls) != len(want) || l.calls["/"] != 1 || l.calls["/stage"] != 1 {
		t.Fatalf("listings %v, want %v", l.calls, want)
	}
}
