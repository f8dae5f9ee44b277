package prefetch

import (
	"context"
	"errors"
	"io"
	"os"
)

// ReadThrough reads a file of the mount to its end, so that the mount
// caches every chunk. The kernel's page cache of the file is dropped first:
// pages it still holds would be served without asking the mount.
func ReadThrough(ctx context.Context, p string, prog *Progress) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	dropPages(f)
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := f.Read(buf)
		prog.Add(n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
