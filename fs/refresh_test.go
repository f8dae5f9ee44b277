package fs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// A stage fills while it is mounted: Refresh shows what arrived, within
// the TTL, and a file that grew is served at its new size.
func TestRefresh(t *testing.T) {
	l, c, clk := newLister(), newContents(), newClock()
	f10, f20 := file("f.fits", 10), file("f.fits", 20)
	l.set("/", f10, file("old", 1), dir("sub"))
	l.set("/sub", file("g", 1))
	c.put("/f.fits", f10, []byte("0123456789"))
	c.put("/f.fits", f20, []byte("0123456789abcdefghij"))
	mnt, root := mountTree(t, l, c, Options{DirTTL: time.Hour, ListAhead: -1, Clock: clk.Now})

	fpath := filepath.Join(mnt, "f.fits")
	if got := readFile(t, fpath); string(got) != "0123456789" {
		t.Fatalf("f.fits reads %q", got)
	}
	held, err := os.Open(fpath) // an open file keeps the version it opened
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	names(t, filepath.Join(mnt, "sub"))

	l.set("/", f20, file("new", 1), dir("sub"))
	l.set("/sub", file("g", 1), file("h", 1))
	if got := names(t, mnt); !slices.Equal(got, []string{"f.fits", "old", "sub"}) {
		t.Fatalf("within the TTL the root lists %v", got)
	}

	rep, err := root.Refresh(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	want := RefreshReport{Dirs: 2, Added: []string{"new"}, Removed: []string{"old"}, Changed: []string{"f.fits"}}
	if fmt.Sprint(rep) != fmt.Sprint(want) {
		t.Fatalf("refresh reports %+v, want %+v", rep, want)
	}
	if n := l.count("/"); n != 2 {
		t.Fatalf("refresh listed the root %d times in all, want 2", n)
	}
	if n := l.count("/sub"); n != 1 {
		t.Fatalf("refresh listed sub now (%d); it should wait for the next access", n)
	}
	if got := names(t, mnt); !slices.Equal(got, []string{"f.fits", "new", "sub"}) {
		t.Fatalf("after refresh the root lists %v", got)
	}
	fi, err := os.Stat(fpath)
	if err != nil || fi.Size() != 20 {
		t.Fatalf("after refresh f.fits: %v, %v; want size 20", fi, err)
	}
	if got := readFile(t, fpath); string(got) != "0123456789abcdefghij" {
		t.Fatalf("after refresh f.fits reads %q", got)
	}
	old := make([]byte, 32)
	if n, _ := held.ReadAt(old, 0); string(old[:n]) != "0123456789" {
		t.Fatalf("the file open before the refresh reads %q", old[:n])
	}
	if got := names(t, filepath.Join(mnt, "sub")); !slices.Equal(got, []string{"g", "h"}) {
		t.Fatalf("after refresh sub lists %v", got)
	}
	if n := l.count("/sub"); n != 2 {
		t.Fatalf("sub listed %d times, want 2", n)
	}

	// One directory.
	l.set("/sub", file("g", 1))
	if rep, err = root.Refresh(context.Background(), "sub"); err != nil {
		t.Fatal(err)
	}
	if want := (RefreshReport{Dirs: 1, Removed: []string{"sub/h"}}); fmt.Sprint(rep) != fmt.Sprint(want) {
		t.Fatalf("refresh sub reports %+v, want %+v", rep, want)
	}
	if n := l.count("/"); n != 2 {
		t.Fatalf("refresh of sub listed the root (%d)", n)
	}

	// A directory never visited is found through its parents' listings,
	// and its listing is kept for its first access.
	l.set("/", f20, file("new", 1), dir("sub"), dir("late"))
	l.set("/late", file("z", 1))
	if _, err := root.Refresh(context.Background(), "."); err != nil {
		t.Fatal(err)
	}
	if rep, err = root.Refresh(context.Background(), "late"); err != nil {
		t.Fatal(err)
	}
	if want := (RefreshReport{Added: []string{"late/z"}}); fmt.Sprint(rep) != fmt.Sprint(want) {
		t.Fatalf("refresh late reports %+v, want %+v", rep, want)
	}
	if got := names(t, filepath.Join(mnt, "late")); !slices.Equal(got, []string{"z"}) {
		t.Fatalf("late lists %v", got)
	}
	if n := l.count("/late"); n != 1 {
		t.Fatalf("late listed %d times, want 1", n)
	}
	if _, err := root.Refresh(context.Background(), "nope"); err == nil {
		t.Fatal("refresh of a missing directory succeeded")
	}
}
