package fs

import "syscall"

// directMountFlags are the mount(2) flags of a mount made without fusermount.
const directMountFlags = syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV
