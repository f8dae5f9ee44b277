package prefetch

import (
	"os"

	"golang.org/x/sys/unix"
)

// dropPages asks the kernel to drop its page cache of f.
func dropPages(f *os.File) {
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
