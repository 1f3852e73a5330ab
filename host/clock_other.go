//go:build !linux

package host

import "syscall"

func processCPUTime() (uint64, error) { return 0, syscall.ENOTSUP }
func cpuClockRes() (uint64, error)    { return 0, syscall.ENOTSUP }
