package netproxy

import (
	"net"
	"syscall"
	"time"
	"unsafe"
)

// drain waits, for at most two seconds, until the kernel has handed every
// byte written to c to its peer (SIOCOUTQ reads zero). A reset sent earlier
// would discard them, and a cut after n bytes would deliver fewer.
func drain(c *net.TCPConn, done <-chan struct{}) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	for range 2000 {
		var queued int32
		var errno syscall.Errno
		err := rc.Control(func(fd uintptr) {
			_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&queued)))
		})
		if err != nil || errno != 0 || queued == 0 {
			return
		}
		select {
		case <-done:
			return
		case <-time.After(time.Millisecond):
		}
	}
}
