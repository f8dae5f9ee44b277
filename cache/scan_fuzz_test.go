package cache

import (
	"bytes"
	"context"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Loading the on-disk index: whatever a crash, a bad disk or a curious
// user left in a file's directory (its meta, a chunk file under any
// name), opening the cache neither panics nor serves a byte the remote
// does not have, and the files it rebuilds its index from stay inside the
// cache directory.

const fuzzChunk = 4 << 10

var fuzzKey = Key{Path: "/stage/f.fits", Size: 3*fuzzChunk + 100, ModTime: time.Unix(1700000000, 0)}

// validChunk is chunk i of fuzzKey as the cache writes it.
func validChunk(i int64) []byte {
	id := newFileID(fuzzKey)
	n := min(fuzzChunk, fuzzKey.Size-i*fuzzChunk)
	b := make([]byte, headerLen+n)
	fill(31, i*fuzzChunk, b[headerLen:])
	chunkHeader{version: id.verHash, offset: i * fuzzChunk, length: uint32(n),
		crc: crc32.Checksum(b[headerLen:], castagnoli)}.encode(b)
	return b
}

func FuzzScan(f *testing.F) {
	meta := encodeMeta(fileMeta{path: fuzzKey.Path, size: fuzzKey.Size, mtime: fuzzKey.ModTime, chunkSize: fuzzChunk})
	f.Add(meta, "0", validChunk(0))
	f.Add(meta, "3", validChunk(3))
	f.Add(meta, "1", validChunk(2)) // another chunk's data under this name
	f.Add(meta, "2", validChunk(2)[:headerLen+10])
	f.Add(meta, "7", validChunk(0))
	f.Add(meta, "-1", validChunk(0))
	f.Add(meta, "01", validChunk(1))
	f.Add(meta, "1.tmp-99", validChunk(1))
	f.Add(meta[:len(meta)-1], "0", validChunk(0))
	f.Add(encodeMeta(fileMeta{path: "/other", size: 1, mtime: time.Unix(1, 0), chunkSize: fuzzChunk}), "0", validChunk(0))
	f.Add(encodeMeta(fileMeta{path: fuzzKey.Path, size: fuzzKey.Size, mtime: fuzzKey.ModTime, chunkSize: 2 * fuzzChunk}), "0", validChunk(0))
	f.Add([]byte{}, "meta", []byte{})
	f.Fuzz(func(t *testing.T, meta []byte, name string, chunk []byte) {
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 200 {
			return // not a file name the disk can hold in one directory
		}
		dir := t.TempDir()
		id := newFileID(fuzzKey)
		fdir := fileDir(filepath.Join(dir, versionDir, "chunks"), id.pathHash)
		if err := os.MkdirAll(fdir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(fdir, metaName), meta, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(fdir, name), chunk, 0o600); err != nil {
			t.Fatal(err)
		}
		r := newFake()
		r.add(fuzzKey.Path, fuzzKey.Size, 31)
		c, err := Open(Config{Dir: dir, ChunkSize: fuzzChunk, Logger: slog.New(slog.DiscardHandler)}, r)
		if err != nil {
			t.Fatalf("open over a damaged file directory: %v", err)
		}
		defer c.Close()
		if st := c.Stats(); st.Chunks > 1 || st.Used > headerLen+fuzzChunk {
			t.Fatalf("index of one chunk file: %+v", st)
		}
		got := make([]byte, fuzzKey.Size)
		n, err := c.ReadAt(context.Background(), fuzzKey, got, 0)
		if err != nil && err != io.EOF {
			t.Fatalf("read: %v", err)
		}
		want := make([]byte, fuzzKey.Size)
		fill(31, 0, want)
		if int64(n) != fuzzKey.Size || !bytes.Equal(got, want) {
			t.Fatalf("served %d bytes that are not the remote's", n)
		}
	})
}
