// Package stage holds the vocabulary that the remote side and the file
// system share: what one name of a remote directory listing is. It knows
// neither FTP nor FUSE, so that package ftps can produce entries and package
// fs can present them without either importing the other.
package stage

import "time"

// EntryType says what a listed name is.
type EntryType int

const (
	// File is a regular file.
	File EntryType = iota
	// Dir is a directory.
	Dir
	// Link is a symbolic link; Entry.Target holds what it points at.
	Link
)

func (t EntryType) String() string {
	switch t {
	case File:
		return "file"
	case Dir:
		return "dir"
	case Link:
		return "link"
	}
	return "unknown"
}

// Entry is one name in a directory listing, with the attributes the listing
// gave. Attributes come from the listing only: no per-file command is sent.
type Entry struct {
	Name    string
	Type    EntryType
	Size    int64
	ModTime time.Time
	Target  string // symlink target as the server printed it; empty for non-links
}
