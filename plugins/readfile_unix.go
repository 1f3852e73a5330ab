//go:build unix

package plugins

import "syscall"

// openNonblock makes opening a FIFO return at once.
const openNonblock = syscall.O_NONBLOCK
