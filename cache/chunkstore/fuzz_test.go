package chunkstore

import (
	"bytes"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Index headers and records decode to what was encoded, or are refused;
// entries never name a chunk outside the file.
func FuzzIndex(f *testing.F) {
	k := Key{Path: "/stage/a.fits", Size: 5 * testChunk, ModTime: time.Unix(1700000000, 5)}
	head := encodeIndexHeader(indexHeader{key: k, chunkSize: testChunk})
	var e [entryLen]byte
	entry{index: 3, crc: 77}.encode(e[:])
	f.Add(append(bytes.Clone(head), e[:]...))
	entry{index: 3, dropped: true}.encode(e[:])
	f.Add(append(bytes.Clone(head), e[:]...))
	f.Add(head[:len(head)-1])
	f.Add(encodeRecord("/stage", []byte("listing")))
	f.Add([]byte(indexMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, n, err := decodeIndexHeader(b); err == nil {
			if !bytes.Equal(encodeIndexHeader(h), b[:n]) {
				t.Fatalf("header %+v does not encode back to its bytes", h)
			}
			nchunks := (h.key.Size + h.chunkSize - 1) / h.chunkSize
			chunks, _ := decodeEntries(b[n:], nchunks)
			for i := range chunks {
				if i < 0 || i >= nchunks {
					t.Fatalf("entry for chunk %d of %d", i, nchunks)
				}
			}
		}
		if name, data, err := decodeRecord(b); err == nil {
			if !bytes.Equal(encodeRecord(name, data), b) {
				t.Fatalf("record %q does not encode back to its bytes", name)
			}
		}
	})
}

// Whatever a crash, a bad disk or a curious user left as a version's index
// and data file, opening the store neither panics nor serves a byte that
// is not the chunk's, and the store's files stay inside its directory.
func FuzzOpen(f *testing.F) {
	const cs = 4 << 10
	k := Key{Path: "/stage/f.fits", Size: 3*cs + 100, ModTime: time.Unix(1700000000, 0)}
	want := make([]byte, k.Size)
	for i := range want {
		want[i] = byte(i * 7)
	}
	head := encodeIndexHeader(indexHeader{key: k, chunkSize: cs})
	index := bytes.Clone(head)
	for i := range int64(4) {
		var e [entryLen]byte
		entry{index: i, crc: crc32.Checksum(want[i*cs:min(k.Size, (i+1)*cs)], castagnoli)}.encode(e[:])
		index = append(index, e[:]...)
	}
	f.Add(index, want)
	f.Add(index[:len(index)-5], want)
	f.Add(index, want[:100])
	f.Add(head, want)
	f.Add(encodeIndexHeader(indexHeader{key: k, chunkSize: 2 * cs}), want)
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, index, data []byte) {
		dir := t.TempDir()
		files := filepath.Join(dir, versionDir, filesDir)
		dp, ip := versionPaths(files, versionName(k))
		if err := os.MkdirAll(filepath.Dir(dp), 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(ip, index, 0o600)
		os.WriteFile(dp, data, 0o600)
		s, err := Open(Config{Dir: dir, ChunkSize: cs, MaxBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("open over a damaged version: %v", err)
		}
		defer s.Close()
		if u := s.Usage(); u.Chunks > 4 || u.Used > k.Size {
			t.Fatalf("usage of one file %+v", u)
		}
		s.Use(k)
		for i := range int64(4) {
			n := min(cs, k.Size-i*cs)
			got := make([]byte, n)
			if s.ReadChunk(k, i, got, 0) && !bytes.Equal(got, want[i*cs:i*cs+n]) {
				// A chunk served must be the one its entry's crc names; here
				// the only right bytes are want's, unless the fuzzer forged
				// an entry whose crc matches other bytes.
				if crc32.Checksum(got, castagnoli) != crc32.Checksum(data[min(int64(len(data)), i*cs):min(int64(len(data)), i*cs+n)], castagnoli) {
					t.Fatalf("chunk %d served with bytes not in the data file", i)
				}
			}
		}
	})
}
