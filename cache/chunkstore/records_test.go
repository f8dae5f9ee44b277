package chunkstore

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// (j) Records round-trip, replace atomically, and are never returned damaged.
func TestRecords(t *testing.T) {
	dir := t.TempDir()
	c := openStore(t, dir, nil)
	names := []string{"/stage/2024", "../../../../etc/passwd", "", "/a\nb", strings.Repeat("x", 5000)}
	for i, name := range names {
		data := bytes.Repeat([]byte{byte(i)}, i*1000)
		if err := c.PutRecord("listing", name, data); err != nil {
			t.Fatal(err)
		}
		got, err := c.GetRecord("listing", name)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("GetRecord(%q) = %d bytes, %v", name, len(got), err)
		}
	}
	if _, err := c.GetRecord("listing", "/never"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing record: %v", err)
	}
	if _, err := c.GetRecord("other", "/stage/2024"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("kinds are separate: %v", err)
	}
	for _, kind := range []string{"", "../x", "a/b", "UP", strings.Repeat("k", 33)} {
		if err := c.PutRecord(kind, "n", nil); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("PutRecord kind %q: %v", kind, err)
		}
	}
	// Every file stays under records/<kind>, named by a hash.
	filepath.WalkDir(filepath.Join(dir, versionDir, recordsDir), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !isHex(d.Name(), 64) {
			t.Errorf("record file %s", p)
		}
		return nil
	})

	// A damaged record is refused and removed, never returned.
	c.PutRecord("listing", "/dmg", []byte("some listing text"))
	_, file, _ := c.recordPath("listing", "/dmg")
	p := filepath.Join(dir, versionDir, recordsDir, "listing", file)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)-3], 0o600)
	if got, err := c.GetRecord("listing", "/dmg"); !errors.Is(err, ErrCorrupt) || got != nil {
		t.Fatalf("damaged record: %q, %v", got, err)
	}
	if _, err := c.GetRecord("listing", "/dmg"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("damaged record not removed: %v", err)
	}

	// Temp files a crash left are removed at Open; records survive it.
	tmp := p + tempMark + "999"
	os.WriteFile(tmp, []byte("half"), 0o600)
	c.Close()
	c = openStore(t, dir, nil)
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("temp record left: %v", err)
	}
	if got, err := c.GetRecord("listing", names[0]); err != nil || len(got) != 0 {
		t.Fatalf("after reopen: %d bytes, %v", len(got), err)
	}
}

// Readers racing a writer see one whole record or the other.
func TestRecordsAtomic(t *testing.T) {
	c := openStore(t, t.TempDir(), nil)
	old, new := bytes.Repeat([]byte("o"), 300_000), bytes.Repeat([]byte("n"), 200_000)
	c.PutRecord("listing", "/x", old)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			c.PutRecord("listing", "/x", [][]byte{old, new}[i%2])
		}
	})
	for range 4 {
		wg.Go(func() {
			for range 200 {
				got, err := c.GetRecord("listing", "/x")
				if err != nil || !(bytes.Equal(got, old) || bytes.Equal(got, new)) {
					t.Errorf("read %d bytes, %v", len(got), err)
					return
				}
			}
		})
	}
	wg.Wait()
}
