package cache

import (
	"context"
	"errors"
	"testing"
)

// TestInventoryAndClear: Inventory reports per file what was read; Clear
// refuses while a Cache is open on the directory, then empties it.
func TestInventoryAndClear(t *testing.T) {
	dir := t.TempDir()
	if got, err := Inventory(dir); err != nil || len(got) != 0 {
		t.Fatalf("empty directory: %v, %v", got, err)
	}
	if gone, err := Clear(dir); err != nil || len(gone) != 0 {
		t.Fatalf("clear an empty directory: %v, %v", gone, err)
	}
	r := newFake()
	whole := r.add("/stage/whole.fits", 3*testChunk+100, 1)
	part := r.add("/stage/part.fits", 10*testChunk, 2)
	c := openCache(t, dir, r, nil)
	readSeq(t, c, whole, 1, 40_000)
	p := make([]byte, 100)
	if _, err := c.ReadAt(context.Background(), part, p, 5*testChunk); err != nil {
		t.Fatal(err)
	}
	settle(t, c)

	got, err := Inventory(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Path != part.Path || got[1].Path != whole.Path {
		t.Fatalf("inventory %+v", got)
	}
	if u := got[1]; u.Cached != whole.Size || u.Size != whole.Size || u.Chunks != 4 || !u.ModTime.Equal(whole.ModTime) {
		t.Errorf("whole file: %+v", u)
	}
	if u := got[0]; u.Size != part.Size || u.Cached < 100 || u.Cached >= part.Size {
		t.Errorf("partly read file: %+v", u)
	}
	if st := c.Stats(); got[0].Cached+got[1].Cached != st.Used {
		t.Errorf("inventory counts %d bytes cached, the cache %d", got[0].Cached+got[1].Cached, st.Used)
	}
	if on := got[0].OnDisk + got[1].OnDisk; on < whole.Size || on > whole.Size+part.Size {
		t.Errorf("inventory counts %d bytes on disk", on)
	}

	if _, err := Clear(dir); !errors.Is(err, ErrInUse) {
		t.Fatalf("clear while open: %v, want ErrInUse", err)
	}
	if again, _ := Inventory(dir); len(again) != 2 {
		t.Fatalf("a refused clear removed files: %+v", again)
	}
	c.Close()
	gone, err := Clear(dir)
	if err != nil || len(gone) != 2 {
		t.Fatalf("clear: %v, %v", gone, err)
	}
	if left, _ := Inventory(dir); len(left) != 0 {
		t.Fatalf("left after clear: %+v", left)
	}
	c = openCache(t, dir, r, nil)
	if st := c.Stats(); st.Used != 0 || st.Chunks != 0 {
		t.Fatalf("reopened after clear: %+v", st)
	}
	readSeq(t, c, whole, 1, 40_000)
}
