//go:build !linux

package prefetch

import "os"

// dropPages does nothing where there is no fadvise: pages the kernel
// still holds are then served without asking the mount, and prefetch
// reads them from memory.
func dropPages(*os.File) {}
