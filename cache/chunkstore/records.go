package chunkstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Records are small blobs kept beside the chunks, such as directory
// listings saved for offline use. They are not counted in the bound.

// PutRecord stores data under (kind, name), replacing any earlier record
// atomically: a reader sees the old record or the new one. kind is a short
// lower-case word; name may be anything, such as a remote path.
func (s *Store) PutRecord(kind, name string, data []byte) error {
	dir, file, err := s.recordPath(kind, name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("put record %s %q: %w", kind, name, err)
	}
	if err := writeAtomic(dir, file, encodeRecord(name, data)); err != nil {
		return fmt.Errorf("put record %s %q: %w", kind, name, err)
	}
	return nil
}

// GetRecord returns the record stored under (kind, name). A missing record
// gives an error matching fs.ErrNotExist; a damaged one is removed and
// gives ErrCorrupt.
func (s *Store) GetRecord(kind, name string) ([]byte, error) {
	dir, file, err := s.recordPath(kind, name)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, file)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("get record %s %q: %w", kind, name, err)
	}
	got, data, err := decodeRecord(b)
	if err != nil {
		s.log.Warn("cache: removing a damaged record", "kind", kind, "name", name, "err", err)
		os.Remove(p)
		return nil, fmt.Errorf("get record %s %q: %w", kind, name, ErrCorrupt)
	}
	if got != name {
		return nil, fmt.Errorf("get record %s %q: %w", kind, name, fs.ErrNotExist)
	}
	return data, nil
}

func (s *Store) recordPath(kind, name string) (dir, file string, err error) {
	if !validKind(kind) {
		return "", "", fmt.Errorf("record kind %q: want 1-32 of a-z 0-9 _ -: %w", kind, fs.ErrInvalid)
	}
	h := sha256.Sum256([]byte(name))
	return filepath.Join(s.records, kind), hex.EncodeToString(h[:]), nil
}

func validKind(kind string) bool {
	if len(kind) == 0 || len(kind) > 32 {
		return false
	}
	for _, r := range kind {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
