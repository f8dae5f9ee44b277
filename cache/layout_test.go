package cache

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
	"time"
)

func testChunkFile(data []byte) []byte {
	b := make([]byte, headerLen+len(data))
	copy(b[headerLen:], data)
	id := newFileID(Key{Path: "/f", Size: 1 << 20, ModTime: time.Unix(1, 2)})
	chunkHeader{version: id.verHash, offset: 65536, length: uint32(len(data)),
		crc: crc32.Checksum(data, castagnoli)}.encode(b)
	return b
}

// (k) Loading a chunk file never panics and never accepts data whose crc
// does not match its header, nor a header for another chunk.
func FuzzChunkHeader(f *testing.F) {
	good := testChunkFile([]byte("the chunk's data, as the server sent it"))
	f.Add(good)
	f.Add(good[:headerLen])
	f.Add(good[:headerLen-1])
	f.Add(testChunkFile(nil))
	bad := bytes.Clone(good)
	bad[headerLen+3] ^= 1
	f.Add(bad)
	want, _ := decodeChunkHeader(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeChunkHeader(b)
		if err == nil && h.length < 1<<20 {
			// What the file claims, with the data length it really has: only the crc stands between.
			w := chunkHeader{version: h.version, offset: h.offset, length: uint32(max(0, len(b)-headerLen))}
			if checkChunk(bytes.NewReader(b), int64(len(b)), w, make([]byte, 7)) == nil {
				if crc32.Checksum(b[headerLen:], castagnoli) != h.crc || h.length != w.length {
					t.Fatalf("accepted a chunk whose data does not match its header")
				}
			}
		}
		if checkChunk(bytes.NewReader(b), int64(len(b)), want, make([]byte, 64)) == nil {
			h, _ := decodeChunkHeader(b)
			if h.version != want.version || h.offset != want.offset || h.length != want.length ||
				crc32.Checksum(b[headerLen:], castagnoli) != h.crc || len(b) != headerLen+int(h.length) {
				t.Fatalf("accepted a chunk that is not the one expected")
			}
		}
	})
}

// Metas and records decode to what was encoded, or are refused.
func FuzzMeta(f *testing.F) {
	f.Add(encodeMeta(fileMeta{path: "/stage/a.fits", size: 1 << 31, mtime: time.Unix(1700000000, 5), chunkSize: 1 << 20}))
	f.Add(encodeRecord("/stage", []byte("listing")))
	f.Add([]byte(metaMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := decodeMeta(b); err == nil {
			if !bytes.Equal(encodeMeta(m), b) {
				t.Fatalf("meta %+v does not encode back to its bytes", m)
			}
		}
		if name, data, err := decodeRecord(b); err == nil {
			if !bytes.Equal(encodeRecord(name, data), b) {
				t.Fatalf("record %q does not encode back to its bytes", name)
			}
		}
	})
}

func TestChunkHeaderRoundTrip(t *testing.T) {
	b := testChunkFile([]byte("0123456789"))
	h, err := decodeChunkHeader(b)
	if err != nil || h.offset != 65536 || h.length != 10 {
		t.Fatalf("%+v, %v", h, err)
	}
	if err := checkChunk(bytes.NewReader(b), int64(len(b)), h, make([]byte, 3)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func([]byte) []byte
	}{
		{"data flipped", func(b []byte) []byte { b[headerLen] ^= 1; return b }},
		{"short", func(b []byte) []byte { return b[:len(b)-1] }},
		{"long", func(b []byte) []byte { return append(b, 0) }},
		{"offset", func(b []byte) []byte { binary.BigEndian.PutUint64(b[44:], 0); return b }},
		{"version", func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 2); return b }},
	} {
		c := tc.mod(bytes.Clone(b))
		if err := checkChunk(bytes.NewReader(c), int64(len(c)), h, make([]byte, 3)); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}
