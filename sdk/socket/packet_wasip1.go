//go:build wasip1

package socket

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// ListenPacket announces on the local address. network is "udp", "udp4"
// or "udp6". The returned net.PacketConn uses sock_recv_from and
// sock_send_to: net.FilePacketConn is not implemented on wasip1.
func ListenPacket(network, address string) (net.PacketConn, error) {
	ctx := context.Background()
	p, fam, err := parseNetwork(network)
	if err != nil || p != udp {
		return nil, opError("listen", network, nil, net.UnknownNetworkError(network))
	}
	ap, err := listenAddr(ctx, network, fam, address)
	if err != nil {
		return nil, opError("listen", network, nil, err)
	}
	fd, err := newSocket(p, ap.Addr())
	if err != nil {
		return nil, opError("listen", network, netAddr(p, ap), err)
	}
	if err := bindSocket(fd, ap); err != nil {
		syscall.Close(fd)
		return nil, opError("listen", network, netAddr(p, ap), sysError("bind", err))
	}
	c, err := newPacketConn(os.NewFile(uintptr(fd), "udp"), fd, netip.AddrPort{})
	if err != nil {
		return nil, opError("listen", network, netAddr(p, ap), err)
	}
	return c, nil
}

// PacketConn is a UDP socket. It is both a net.PacketConn and, when it was
// created by Dial, a connected net.Conn (so Go's DNS client treats it as a
// datagram transport).
type PacketConn struct {
	f     *os.File
	rc    syscall.RawConn
	laddr *net.UDPAddr
	raddr *net.UDPAddr // nil when not connected
}

func newPacketConn(f *os.File, fd int, peer netip.AddrPort) (*PacketConn, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	la, _ := localAddr(fd)
	c := &PacketConn{f: f, rc: rc, laddr: net.UDPAddrFromAddrPort(la)}
	if peer.IsValid() {
		c.raddr = net.UDPAddrFromAddrPort(peer)
	}
	return c, nil
}

func (c *PacketConn) opErr(op string, addr net.Addr, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, os.ErrClosed) {
		err = net.ErrClosed
	}
	if addr == nil && c.raddr != nil {
		addr = c.raddr
	}
	return &net.OpError{Op: op, Net: "udp", Source: c.laddr, Addr: addr, Err: sysError(op+"msg", err)}
}

// ReadFromUDPAddrPort reads one datagram into p and returns its sender.
// A datagram larger than p is truncated.
func (c *PacketConn) ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error) {
	var n int
	var from netip.AddrPort
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		n, from, _, rerr = recvFrom(int(fd), p)
		return rerr != syscall.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	return n, from, c.opErr("read", nil, err)
}

// ReadFrom implements net.PacketConn.
func (c *PacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromUDPAddrPort(p)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// Read implements net.Conn: one datagram from the connected peer.
func (c *PacketConn) Read(p []byte) (int, error) {
	n, _, err := c.ReadFromUDPAddrPort(p)
	return n, err
}

// WriteToUDPAddrPort sends p as one datagram to addr.
func (c *PacketConn) WriteToUDPAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	var n int
	var werr error
	err := c.rc.Write(func(fd uintptr) bool {
		n, werr = sendTo(int(fd), p, addr)
		return werr != syscall.EAGAIN
	})
	if err == nil {
		err = werr
	}
	return n, c.opErr("write", net.UDPAddrFromAddrPort(addr), err)
}

// WriteTo implements net.PacketConn. addr must be a *net.UDPAddr.
func (c *PacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, c.opErr("write", addr, syscall.EINVAL)
	}
	ap := ua.AddrPort()
	return c.WriteToUDPAddrPort(p, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
}

// Write implements net.Conn: one datagram to the connected peer.
func (c *PacketConn) Write(p []byte) (int, error) {
	var n int
	var werr error
	err := c.rc.Write(func(fd uintptr) bool {
		n, werr = syscall.Write(int(fd), p)
		return werr != syscall.EAGAIN
	})
	if err == nil {
		err = werr
	}
	return n, c.opErr("write", nil, err)
}

// Close closes the socket.
func (c *PacketConn) Close() error { return c.opErr("close", nil, c.f.Close()) }

// LocalAddr returns the local address reported by the host.
func (c *PacketConn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr returns the connected peer, or nil.
func (c *PacketConn) RemoteAddr() net.Addr {
	if c.raddr == nil {
		return nil
	}
	return c.raddr
}

// SetDeadline implements net.Conn.
func (c *PacketConn) SetDeadline(t time.Time) error { return c.f.SetDeadline(t) }

// SetReadDeadline implements net.Conn.
func (c *PacketConn) SetReadDeadline(t time.Time) error { return c.f.SetReadDeadline(t) }

// SetWriteDeadline implements net.Conn.
func (c *PacketConn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }
