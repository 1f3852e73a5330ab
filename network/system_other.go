//go:build !linux

package network

import (
	"net/netip"
	"syscall"
)

// newSystemSocket: real sockets are implemented for Linux only so far.
func newSystemSocket(proto Proto, family Family) (Socket, error) {
	return nil, opErr("socket", proto, netip.AddrPort{}, syscall.ENOSYS)
}

func adoptSystemListener(l syscall.Conn) (Socket, error) {
	return nil, opErr("adopt", TCP, netip.AddrPort{}, syscall.ENOSYS)
}
