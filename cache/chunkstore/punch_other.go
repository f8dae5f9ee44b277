//go:build !linux

package chunkstore

import "os"

// punchHole reports that holes can't be punched here: eviction drops
// whole files instead.
func punchHole(f *os.File, off, n int64) error { return errNoPunch }
