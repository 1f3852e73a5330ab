//go:build !wasip1

package socket

import (
	"context"
	"net"
	"net/netip"
	"os"
	"time"
)

// Dialer connects to addresses through the host's sockets. The zero value
// is ready to use.
type Dialer struct {
	// Timeout bounds the whole dial, including name resolution.
	Timeout time.Duration
	// Resolver resolves host names; nil uses the host's getaddrinfo.
	Resolver *Resolver
}

// DialContext connects to address on the named network ("tcp", "tcp4",
// "tcp6", "udp", "udp4", "udp6").
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return nil, ErrUnsupported
}

// Dial connects to address on the named network.
func Dial(network, address string) (net.Conn, error) { return nil, ErrUnsupported }

// DialContext connects to address on the named network.
func DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return nil, ErrUnsupported
}

// Listen announces on the local address ("tcp", "tcp4", "tcp6").
func Listen(network, address string) (net.Listener, error) { return nil, ErrUnsupported }

// ListenPacket announces on the local address ("udp", "udp4", "udp6").
func ListenPacket(network, address string) (net.PacketConn, error) {
	return nil, ErrUnsupported
}

// Resolver resolves host names through the host (sock_getaddrinfo). The
// zero value is ready to use.
type Resolver struct{}

// LookupNetIP returns the addresses of host. network is "ip", "ip4" or
// "ip6".
func (r *Resolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return nil, ErrUnsupported
}

// LookupHost returns the addresses of host as strings.
func (r *Resolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	return nil, ErrUnsupported
}

// GoResolver returns Go's pure DNS resolver with its queries sent over
// this package's sockets.
func GoResolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: DialContext}
}

// FileListener returns a listener for a listening socket the host handed
// to the program (for example one preopened by `wasmgate run --listen`).
func FileListener(f *os.File) (net.Listener, error) { return nil, ErrUnsupported }
