package chunkstore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"
)

// On-disk layout, all under Config.Dir:
//
//	v2/lock                            flock held while a Store is open
//	v2/files/<h[:2]>/<h>.data          one file version's bytes, sparse: chunk i at i*ChunkSize
//	v2/files/<h[:2]>/<h>.index         the version, then one entry per chunk stored or dropped
//	v2/records/<kind>/<sha256(name)>   small blobs
//
// h is the hex sha256 of the version (path, size, modification time), so no
// remote name reaches the local file system, and a stream still writing a
// replaced version writes into that version's file, never the new one's. A
// new format gets a new version directory; an older one found at Open is
// removed.
const (
	formatVersion = 2
	versionDir    = "v2"
	filesDir      = "files"
	recordsDir    = "records"
	dataExt       = ".data"
	indexExt      = ".index"
	tempMark      = ".tmp-"

	indexMagic  = "MASTIDX2"
	recordMagic = "MASTRECD"

	// entryLen is the size of an index entry: chunk index and flag, data
	// crc, entry crc.
	entryLen = 8 + 4 + 4
	// dropped marks an entry that records a chunk's removal.
	dropped = 1 << 63

	maxPathLen = 1 << 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errDamaged marks a cache file that failed its checks.
var errDamaged = errors.New("damaged cache file")

// Key names one version of a remote file, as the directory listing gave it.
type Key struct {
	Path    string
	Size    int64
	ModTime time.Time
}

// same reports whether k and o name the same version.
func (k Key) same(o Key) bool {
	return k.Path == o.Path && k.Size == o.Size && k.ModTime.Equal(o.ModTime)
}

// versionName returns the hex digest that names the files of version k.
func versionName(k Key) string {
	h := sha256.New()
	h.Write([]byte(k.Path))
	var b [1 + 8 + 8 + 4]byte
	binary.BigEndian.PutUint64(b[1:], uint64(k.Size))
	binary.BigEndian.PutUint64(b[9:], uint64(k.ModTime.Unix()))
	binary.BigEndian.PutUint32(b[17:], uint32(k.ModTime.Nanosecond()))
	h.Write(b[:])
	return hex.EncodeToString(h.Sum(nil))
}

// versionPaths returns the data and index files of the version named name.
func versionPaths(files, name string) (data, index string) {
	base := filepath.Join(files, name[:2], name)
	return base + dataExt, base + indexExt
}

// indexHeader is what an index file starts with: the version its chunks
// belong to and the chunk size they were cut with.
type indexHeader struct {
	key       Key
	chunkSize int64
}

func encodeIndexHeader(h indexHeader) []byte {
	b := make([]byte, 0, 8+4+8+8+8+4+4+len(h.key.Path)+4)
	b = append(b, indexMagic...)
	b = binary.BigEndian.AppendUint32(b, formatVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(h.chunkSize))
	b = binary.BigEndian.AppendUint64(b, uint64(h.key.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(h.key.ModTime.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(h.key.ModTime.Nanosecond()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(h.key.Path)))
	b = append(b, h.key.Path...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeIndexHeader decodes the header at the start of b and returns it
// with its length.
func decodeIndexHeader(b []byte) (indexHeader, int, error) {
	const fixed = 8 + 4 + 8 + 8 + 8 + 4 + 4
	var h indexHeader
	if len(b) < fixed+4 || string(b[:8]) != indexMagic || binary.BigEndian.Uint32(b[8:12]) != formatVersion {
		return h, 0, fmt.Errorf("index magic or version: %w", errDamaged)
	}
	n := binary.BigEndian.Uint32(b[40:44])
	if n > maxPathLen || uint64(len(b)) < fixed+uint64(n)+4 {
		return h, 0, fmt.Errorf("index path length: %w", errDamaged)
	}
	end := fixed + int(n)
	if binary.BigEndian.Uint32(b[end:end+4]) != crc32.Checksum(b[:end], castagnoli) {
		return h, 0, fmt.Errorf("index header crc: %w", errDamaged)
	}
	h.chunkSize = int64(binary.BigEndian.Uint64(b[12:20]))
	h.key.Size = int64(binary.BigEndian.Uint64(b[20:28]))
	sec := int64(binary.BigEndian.Uint64(b[28:36]))
	nsec := binary.BigEndian.Uint32(b[36:40])
	if nsec >= 1e9 || h.key.Size < 0 || h.chunkSize <= 0 {
		return indexHeader{}, 0, fmt.Errorf("index fields: %w", errDamaged)
	}
	h.key.ModTime = time.Unix(sec, int64(nsec))
	h.key.Path = string(b[fixed:end])
	return h, end + 4, nil
}

// entry is one line of an index: chunk index stored with crc, or dropped.
type entry struct {
	index   int64
	crc     uint32
	dropped bool
}

func (e entry) encode(b []byte) {
	v := uint64(e.index)
	if e.dropped {
		v |= dropped
	}
	binary.BigEndian.PutUint64(b[0:8], v)
	binary.BigEndian.PutUint32(b[8:12], e.crc)
	binary.BigEndian.PutUint32(b[12:16], crc32.Checksum(b[:12], castagnoli))
}

// decodeEntries decodes the entries in b, stopping at the first one that
// fails its crc or names a chunk past nchunks: what a crash mid-append
// leaves. It returns the chunks stored with their crcs, and whether all of
// b was whole entries.
func decodeEntries(b []byte, nchunks int64) (map[int64]uint32, bool) {
	chunks := map[int64]uint32{}
	for len(b) >= entryLen {
		if binary.BigEndian.Uint32(b[12:16]) != crc32.Checksum(b[:12], castagnoli) {
			return chunks, false
		}
		v := binary.BigEndian.Uint64(b[0:8])
		i := int64(v &^ dropped)
		if i >= nchunks {
			return chunks, false
		}
		if v&dropped != 0 {
			delete(chunks, i)
		} else {
			chunks[i] = binary.BigEndian.Uint32(b[8:12])
		}
		b = b[entryLen:]
	}
	return chunks, len(b) == 0
}

func encodeRecord(name string, data []byte) []byte {
	b := make([]byte, 0, 8+4+4+len(name)+len(data)+4)
	b = append(b, recordMagic...)
	b = binary.BigEndian.AppendUint32(b, formatVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeRecord(b []byte) (name string, data []byte, err error) {
	const fixed = 8 + 4 + 4
	if len(b) < fixed+4 || string(b[:8]) != recordMagic || binary.BigEndian.Uint32(b[8:12]) != formatVersion {
		return "", nil, fmt.Errorf("record magic or version: %w", errDamaged)
	}
	body := b[:len(b)-4]
	if binary.BigEndian.Uint32(b[len(b)-4:]) != crc32.Checksum(body, castagnoli) {
		return "", nil, fmt.Errorf("record crc: %w", errDamaged)
	}
	n := binary.BigEndian.Uint32(b[12:16])
	if uint64(n) > uint64(len(body)-fixed) {
		return "", nil, fmt.Errorf("record name length: %w", errDamaged)
	}
	return string(body[fixed : fixed+n]), body[fixed+n:], nil
}

// writeAtomic writes data to dir/name through a temporary file beside it
// and a rename, so a reader sees the old file or the new one, never a part.
// There is no fsync: what a power cut leaves half-written fails its crc
// and is dropped when read.
func writeAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, name+tempMark+"*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
