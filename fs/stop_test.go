package fs

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Stop ends a listing and a read that wait on a server that never
// answers, and fails what comes after at once.
func TestStopEndsRequestsInFlight(t *testing.T) {
	l, c := newLister(), newContents()
	e := file("f", 10)
	l.set("/", e, dir("sub"), dir("late"))
	l.set("/sub")
	c.put("/f", e, []byte("0123456789"))
	mnt, root := mountTree(t, l, c, Options{ListAhead: -1})
	names(t, mnt)

	l.mu.Lock()
	l.gate = make(chan struct{}) // never opened
	l.mu.Unlock()
	c.mu.Lock()
	c.block = make(chan struct{})
	c.mu.Unlock()
	listed := make(chan error, 1)
	go func() { _, err := os.ReadDir(filepath.Join(mnt, "sub")); listed <- err }()
	read := make(chan error, 1)
	go func() { _, err := os.ReadFile(filepath.Join(mnt, "f")); read <- err }()
	eventually(t, "both requests waiting", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return l.count("/sub") == 1 && c.reads == 1
	})
	root.Stop()
	for what, ch := range map[string]chan error{"listing": listed, "read": read} {
		select {
		case err := <-ch:
			if errnoOf(err) != syscall.EIO {
				t.Fatalf("%s ended by Stop: %v, want EIO", what, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s still waiting a minute after Stop", what)
		}
	}
	// Later requests fail without waiting.
	l.set("/late")
	if _, err := os.ReadDir(filepath.Join(mnt, "late")); err == nil {
		t.Fatal("a listing after Stop succeeded")
	}
}
