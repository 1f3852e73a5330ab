//go:build wasip1

package socket

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// Resolver resolves host names through the host (sock_getaddrinfo), where
// the host's policy decides the lookup and each answer. The zero value
// (and a nil *Resolver) is ready to use.
type Resolver struct{}

// GoResolver returns Go's pure DNS resolver with its queries sent over
// this package's sockets. Under wasmgate the queries reach the host's DNS
// stub (named by the virtual /etc/resolv.conf), so the same policy applies
// as for sock_getaddrinfo.
func GoResolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: DialContext}
}

// LookupHost returns the addresses of host as strings.
func (r *Resolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out, nil
}

// LookupNetIP returns the addresses of host. network is "ip", "ip4" or
// "ip6". An IP literal is returned as is, without asking the host.
func (r *Resolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	fam := 0
	switch network {
	case "ip":
	case "ip4":
		fam = 4
	case "ip6":
		fam = 6
	default:
		return nil, net.UnknownNetworkError(network)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: host}
	}
	return getaddrinfo(host, fam)
}

// resolveAddrPorts turns "host:port" into the candidate addresses for the
// given family (0 = any).
func (r *Resolver) resolveAddrPorts(ctx context.Context, network string, fam int, address string, passive bool) ([]netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	pn, err := parsePort(ctx, network, port)
	if err != nil {
		return nil, err
	}
	if host == "" && !passive {
		// Like net.Dial: an empty host means the local system.
		if fam == 6 {
			host = "::1"
		} else {
			host = "127.0.0.1"
		}
	}
	ipnet := "ip"
	if fam == 4 {
		ipnet = "ip4"
	} else if fam == 6 {
		ipnet = "ip6"
	}
	addrs, err := r.LookupNetIP(ctx, ipnet, host)
	if err != nil {
		return nil, err
	}
	var out []netip.AddrPort
	for _, a := range addrs {
		if a.Is4In6() {
			a = a.Unmap()
		}
		if (fam == 4 && !a.Is4()) || (fam == 6 && !a.Is6()) {
			continue
		}
		out = append(out, netip.AddrPortFrom(a, pn))
	}
	if len(out) == 0 {
		return nil, &net.AddrError{Err: "no suitable address found", Addr: host}
	}
	return out, nil
}

// Layout of the result buffers handed to sock_getaddrinfo
// (docs/socket-abi.md#getaddrinfo-layout): maxResults linked addrinfo
// nodes, each with its own sockaddr, sa_data and canonname buffers.
const (
	maxResults    = 16
	addrinfoSize  = 28
	sockaddrSize  = 12
	saDataSize    = 26
	canonNameSize = 30
	gaiNodeSize   = addrinfoSize + sockaddrSize + saDataSize + canonNameSize
	gaiHintsOff   = maxResults * gaiNodeSize
	gaiStrOff     = gaiHintsOff + addrinfoSize + 4 // hints, then res_ptr
	gaiMaxName    = 255
	gaiBufSize    = gaiStrOff + gaiMaxName + 1 + 8 // node + NUL, ret_res_len (aligned)

	eaiNoData = 83 // AINODATA
	eaiNoName = 84 // AINONAME
)

//go:noinline
func gaiBuffer() []byte { return make([]byte, gaiBufSize) }

func getaddrinfo(host string, fam int) ([]netip.Addr, error) {
	if len(host) > gaiMaxName {
		return nil, &net.DNSError{Err: "name too long", Name: host, IsNotFound: true}
	}
	buf := gaiBuffer() // on the heap: u32 pointers into it are invisible to the GC
	base := uint32(uintptr(unsafe.Pointer(&buf[0])))
	le := binary.LittleEndian
	for i := 0; i < maxResults; i++ {
		node := i * addrinfoSize
		sa := maxResults*addrinfoSize + i*sockaddrSize
		data := maxResults*(addrinfoSize+sockaddrSize) + i*saDataSize
		canon := maxResults*(addrinfoSize+sockaddrSize+saDataSize) + i*canonNameSize
		le.PutUint32(buf[node+12:], base+uint32(sa))
		le.PutUint32(buf[node+16:], base+uint32(canon))
		le.PutUint32(buf[node+20:], canonNameSize)
		if i+1 < maxResults {
			le.PutUint32(buf[node+24:], base+uint32(node+addrinfoSize))
		}
		le.PutUint32(buf[sa+4:], saDataSize)
		le.PutUint32(buf[sa+8:], base+uint32(data))
	}
	hints := buf[gaiHintsOff:]
	switch fam {
	case 4:
		hints[2] = afInet4
	case 6:
		hints[2] = afInet6
	}
	hints[3] = sockStream
	hints[4] = ipprotoTCP
	le.PutUint32(buf[gaiHintsOff+addrinfoSize:], base) // *res_ptr_ptr = first node
	nodeOff := gaiStrOff
	n := copy(buf[nodeOff:], host)
	buf[nodeOff+n] = 0
	retOff := (nodeOff + n + 1 + 3) &^ 3
	e := sock_getaddrinfo(
		unsafe.Pointer(&buf[nodeOff]), uint32(n+1),
		unsafe.Pointer(&buf[retOff]), 0, // no service
		unsafe.Pointer(&buf[gaiHintsOff]),
		unsafe.Pointer(&buf[gaiHintsOff+addrinfoSize]),
		maxResults,
		unsafe.Pointer(&buf[retOff]))
	runtime.KeepAlive(buf)
	if e != 0 {
		return nil, gaiError(host, e)
	}
	count := int(le.Uint32(buf[retOff:]))
	if count > maxResults {
		count = maxResults
	}
	seen := make(map[netip.Addr]bool)
	var out []netip.Addr
	for i := 0; i < count; i++ {
		sa := maxResults*addrinfoSize + i*sockaddrSize
		data := buf[maxResults*(addrinfoSize+sockaddrSize)+i*saDataSize:][:saDataSize]
		var a netip.Addr
		switch buf[sa] {
		case afInet4:
			a = netip.AddrFrom4([4]byte(data[2:6]))
		case afInet6:
			a = netip.AddrFrom16([16]byte(data[2:18]))
		default:
			continue
		}
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

func gaiError(host string, e uint32) error {
	switch e {
	case eaiNoName, eaiNoData:
		return &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	case uint32(syscall.EACCES):
		return &net.DNSError{Err: syscall.EACCES.Error(), Name: host}
	}
	if e < 77 {
		return &net.DNSError{Err: syscall.Errno(e).Error(), Name: host}
	}
	return &net.DNSError{Err: "getaddrinfo error " + strconv.Itoa(int(e)), Name: host}
}
