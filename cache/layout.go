package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// On-disk layout, all under Config.Dir:
//
//	v1/lock                          flock held while a Cache is open
//	v1/chunks/<h[:2]>/<h>/meta       the file version the chunks belong to
//	v1/chunks/<h[:2]>/<h>/<index>    one chunk: header then data
//	v1/records/<kind>/<sha256(name)> small blobs
//
// h is the hex sha256 of the remote path, so no remote name reaches the
// local file system. A new format gets a new version directory, and an old
// cache is then ignored rather than misread.
const (
	formatVersion = 1
	versionDir    = "v1"
	metaName      = "meta"
	tempMark      = ".tmp-"

	chunkMagic  = "MASTCHNK"
	metaMagic   = "MASTMETA"
	recordMagic = "MASTRECD"

	// headerLen is the size of a chunk file's header: magic, version, version
	// hash, offset, length, data crc, header crc.
	headerLen = 8 + 4 + 32 + 8 + 4 + 4 + 4

	maxPathLen = 1 << 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errDamaged marks a cache file that failed its checks.
var errDamaged = errors.New("damaged cache file")

// fileID names one version of a remote file.
type fileID struct {
	Key
	pathHash [32]byte // names the file's directory
	verHash  [32]byte // written into every chunk header
}

func newFileID(k Key) fileID {
	id := fileID{Key: k, pathHash: sha256.Sum256([]byte(k.Path))}
	h := sha256.New()
	h.Write([]byte(k.Path))
	var b [1 + 8 + 8 + 4]byte
	binary.BigEndian.PutUint64(b[1:], uint64(k.Size))
	binary.BigEndian.PutUint64(b[9:], uint64(k.ModTime.Unix()))
	binary.BigEndian.PutUint32(b[17:], uint32(k.ModTime.Nanosecond()))
	h.Write(b[:])
	h.Sum(id.verHash[:0])
	return id
}

func (id fileID) dirName() string { return hex.EncodeToString(id.pathHash[:]) }

func fileDir(root string, pathHash [32]byte) string {
	h := hex.EncodeToString(pathHash[:])
	return filepath.Join(root, h[:2], h)
}

func chunkName(i int64) string { return strconv.FormatInt(i, 10) }

// chunkHeader is the fixed header at the start of every chunk file.
type chunkHeader struct {
	version [32]byte // verHash of the file version
	offset  int64    // offset of the first data byte in the remote file
	length  uint32   // data bytes after the header
	crc     uint32   // crc32c of the data
}

func (h chunkHeader) encode(b []byte) {
	copy(b[0:8], chunkMagic)
	binary.BigEndian.PutUint32(b[8:12], formatVersion)
	copy(b[12:44], h.version[:])
	binary.BigEndian.PutUint64(b[44:52], uint64(h.offset))
	binary.BigEndian.PutUint32(b[52:56], h.length)
	binary.BigEndian.PutUint32(b[56:60], h.crc)
	binary.BigEndian.PutUint32(b[60:64], crc32.Checksum(b[:60], castagnoli))
}

func decodeChunkHeader(b []byte) (chunkHeader, error) {
	var h chunkHeader
	if len(b) < headerLen {
		return h, fmt.Errorf("chunk header of %d bytes: %w", len(b), errDamaged)
	}
	if string(b[0:8]) != chunkMagic || binary.BigEndian.Uint32(b[8:12]) != formatVersion {
		return h, fmt.Errorf("chunk magic or version: %w", errDamaged)
	}
	if binary.BigEndian.Uint32(b[60:64]) != crc32.Checksum(b[:60], castagnoli) {
		return h, fmt.Errorf("chunk header crc: %w", errDamaged)
	}
	copy(h.version[:], b[12:44])
	h.offset = int64(binary.BigEndian.Uint64(b[44:52]))
	h.length = binary.BigEndian.Uint32(b[52:56])
	h.crc = binary.BigEndian.Uint32(b[56:60])
	return h, nil
}

// checkChunk reads a whole chunk file of size bytes through r and reports
// whether it holds exactly the chunk described by want, with data whose
// crc32c matches its header. scratch is a read buffer of any non-zero size.
func checkChunk(r io.ReaderAt, size int64, want chunkHeader, scratch []byte) error {
	var hb [headerLen]byte
	if _, err := r.ReadAt(hb[:], 0); err != nil {
		return fmt.Errorf("chunk header: %w: %w", errDamaged, err)
	}
	h, err := decodeChunkHeader(hb[:])
	if err != nil {
		return err
	}
	if h.version != want.version || h.offset != want.offset || h.length != want.length {
		return fmt.Errorf("chunk header names another chunk: %w", errDamaged)
	}
	if size != headerLen+int64(h.length) {
		return fmt.Errorf("chunk file of %d bytes for %d data bytes: %w", size, h.length, errDamaged)
	}
	crc := crc32.New(castagnoli)
	sr := io.NewSectionReader(r, headerLen, int64(h.length))
	if n, err := io.CopyBuffer(crc, sr, scratch); err != nil || n != int64(h.length) {
		return fmt.Errorf("chunk data read %d of %d bytes: %w", n, h.length, errDamaged)
	}
	if crc.Sum32() != h.crc {
		return fmt.Errorf("chunk data crc: %w", errDamaged)
	}
	return nil
}

// fileMeta is the per-file record of which version the chunks belong to.
type fileMeta struct {
	path      string
	size      int64
	mtime     time.Time
	chunkSize int64
}

func encodeMeta(m fileMeta) []byte {
	b := make([]byte, 0, 8+4+8+8+8+4+4+len(m.path)+4)
	b = append(b, metaMagic...)
	b = binary.BigEndian.AppendUint32(b, formatVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(m.chunkSize))
	b = binary.BigEndian.AppendUint64(b, uint64(m.size))
	b = binary.BigEndian.AppendUint64(b, uint64(m.mtime.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(m.mtime.Nanosecond()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.path)))
	b = append(b, m.path...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeMeta(b []byte) (fileMeta, error) {
	const fixed = 8 + 4 + 8 + 8 + 8 + 4 + 4
	var m fileMeta
	if len(b) < fixed+4 || string(b[:8]) != metaMagic || binary.BigEndian.Uint32(b[8:12]) != formatVersion {
		return m, fmt.Errorf("meta magic or version: %w", errDamaged)
	}
	body := b[:len(b)-4]
	if binary.BigEndian.Uint32(b[len(b)-4:]) != crc32.Checksum(body, castagnoli) {
		return m, fmt.Errorf("meta crc: %w", errDamaged)
	}
	m.chunkSize = int64(binary.BigEndian.Uint64(b[12:20]))
	m.size = int64(binary.BigEndian.Uint64(b[20:28]))
	sec := int64(binary.BigEndian.Uint64(b[28:36]))
	nsec := binary.BigEndian.Uint32(b[36:40])
	n := binary.BigEndian.Uint32(b[40:44])
	if uint64(n) != uint64(len(body)-fixed) || n > maxPathLen || nsec >= 1e9 || m.size < 0 || m.chunkSize <= 0 {
		return fileMeta{}, fmt.Errorf("meta fields: %w", errDamaged)
	}
	m.mtime = time.Unix(sec, int64(nsec))
	m.path = string(body[fixed:])
	return m, nil
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
// There is no fsync: every file carries a crc, so what a power cut leaves
// half-written is found and dropped when read.
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
