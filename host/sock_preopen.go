package host

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/wasmgate/wasmgate/host/internal/dnsstub"
	"github.com/wasmgate/wasmgate/host/internal/sysfs"
	"github.com/wasmgate/wasmgate/network"
)

// listenBacklog is the backlog of --listen sockets: the largest a guest
// can ask for, which the system network clamps to the system's maximum
// (net.core.somaxconn), as native Go's net.Listen gets. 128 made the kernel drop SYNs when a
// thousand clients connected at once (docs/sockets.md, "Listen backlog").
const listenBacklog = math.MaxInt32

// openPreopenedSockets runs after the preopened directories are in the fd
// table. It adds, in this order:
//
//  1. the virtual /etc of the DNS stub (resolv.conf naming the stub,
//     hosts, nsswitch.conf), only when the guest has a network at all
//     (hasNetwork) and no preopen at "/" or at or under "/etc" of its own.
//     It comes after the user's directories, so the first of those is
//     fd 3 as on every other runtime, and before any socket, because it
//     is a directory (preopen scans stop at the first fd that is not);
//  2. one listening TCP socket per WithListen address (--listen) or
//     WithListener listener (s.cfg.listen, in the order given): an address
//     is bound and listened on through the configured Network, a listener
//     adopted through it (network.Adopter), so the policy decides tcp.bind
//     and tcp.listen exactly as for a guest's own listener. Any failure, a
//     denial included, fails the start: the operator asked for that socket.
func (s *state) openPreopenedSockets(ctx context.Context) error {
	if s.hasNetwork() && !s.hasOwnEtc() {
		if _, err := s.fds.insert(preopenEntry(sysfs.NewFSDir(dnsstub.Files()), "/etc")); err != nil {
			return err
		}
	}
	var bound []Listening
	for _, spec := range s.cfg.listen {
		var l Listening
		var err error
		if spec.listener != nil {
			l, err = s.adoptListener(ctx, spec)
		} else {
			l, err = s.openListener(ctx, spec.addr)
		}
		if err != nil {
			return fmt.Errorf("listen %s: %w", spec.addr, err)
		}
		bound = append(bound, l)
	}
	if s.cfg.onListen != nil {
		for _, l := range bound {
			if err := s.cfg.onListen(l); err != nil {
				return err
			}
		}
	}
	return nil
}

// hasNetwork reports whether the guest may use the network at all: a
// Network is configured and it is not a network.Default without a Policy,
// which denies every operation (the CLI's `run` without --policy). A guest
// without one gets no virtual /etc: nothing it names could be reached.
func (s *state) hasNetwork() bool {
	if s.cfg.network == nil {
		return false
	}
	d, ok := s.cfg.network.(*network.Default)
	return !ok || d.Policy != nil
}

func (s *state) hasOwnEtc() bool {
	for _, m := range s.cfg.mounts {
		g := m.guest
		if g == "/" || g == "/etc" || strings.HasPrefix(g, "/etc/") {
			return true
		}
	}
	return false
}

// parseListenAddr accepts "IP:port", ":port" (all IPv4 interfaces) and
// "localhost:port" (127.0.0.1). Other names are refused: resolving them at
// start would need a DNS policy decision nobody asked for.
func parseListenAddr(addr string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", port)
	}
	var a netip.Addr
	switch host {
	case "":
		a = netip.IPv4Unspecified()
	case "localhost":
		a = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	default:
		a, err = netip.ParseAddr(host)
		if err != nil || a.Zone() != "" {
			return netip.AddrPort{}, fmt.Errorf("host %q is not an IP address", host)
		}
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(pn)), nil
}

func (s *state) openListener(ctx context.Context, addr string) (Listening, error) {
	ap, err := parseListenAddr(addr)
	if err != nil {
		return Listening{}, err
	}
	fam := network.IPv4
	if ap.Addr().Is6() {
		fam = network.IPv6
	}
	sock, err := s.network().Socket(ctx, network.TCP, fam)
	if err != nil {
		return Listening{}, err
	}
	if err := sock.Bind(ctx, ap); err != nil {
		sock.Close()
		return Listening{}, err
	}
	if err := sock.Listen(ctx, listenBacklog); err != nil {
		sock.Close()
		return Listening{}, err
	}
	return s.insertListener(sock, addr)
}

// insertListener puts a listening socket in the fd table and describes it
// for WithOnListen; on failure it closes sock.
func (s *state) insertListener(sock network.Socket, addr string) (Listening, error) {
	bound, err := sock.LocalAddr()
	if err != nil {
		sock.Close()
		return Listening{}, err
	}
	fd, err := s.fds.insert(newSocketEntry(s.newSocketFile(sock), false))
	if err != nil {
		sock.Close()
		return Listening{}, err
	}
	return Listening{Addr: addr, Bound: bound, Fd: fd}, nil
}

// adoptListener hands the guest a duplicate of a WithListener listener,
// adopted through the configured Network.
func (s *state) adoptListener(ctx context.Context, spec listenSpec) (Listening, error) {
	a, ok := s.network().(network.Adopter)
	if !ok {
		return Listening{}, fmt.Errorf("the network (%T) cannot adopt a listener", s.network())
	}
	sock, err := a.AdoptListener(ctx, spec.listener)
	if err != nil {
		return Listening{}, err
	}
	return s.insertListener(sock, spec.addr)
}
