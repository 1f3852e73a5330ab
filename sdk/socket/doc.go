// Package socket gives Go programs compiled with GOOS=wasip1 real network
// sockets through the WasmEdge socket extension of wasi_snapshot_preview1,
// as implemented by wasmgate (and by WasmEdge and wasi-go).
//
// Go's own net.Dial and net.Listen on wasip1 are backed by an in-process
// fake network, so a guest that wants to reach the outside world (or be
// reached) must create its sockets through the host. This package does
// that and hands back ordinary net.Conn, net.Listener and net.PacketConn
// values that integrate with the Go runtime's network poller: deadlines,
// goroutines blocking in Read, and net/http all work as usual.
//
//	client := &http.Client{Transport: &http.Transport{
//		DialContext: new(socket.Dialer).DialContext,
//	}}
//
// A listening socket that the host opened before the program started
// (`wasmgate run --listen ADDR`) becomes a net.Listener with FileListener.
// UDP sockets are *PacketConn values (wasip1 only): net.FilePacketConn is
// not implemented on wasip1, so datagrams go through sock_recv_from and
// sock_send_to directly.
//
// io.Copy between two connections of this package (an echo's io.Copy(c,
// c), a proxy's io.Copy(upstream, client), also through io.LimitReader)
// asks the host to splice: wasmgate moves the bytes from socket to socket
// in its kernel and the guest only waits for readiness, so they never
// cross into wasm memory. The request is a wasmgate extension carried by
// sock_getsockopt (level 0x7767, see docs/sockets.md in wasmgate), so the
// program still runs on hosts without it: the first refusal is
// remembered and copies fall back. Other copies (and every copy on such a
// host) go through pooled buffers that grow to 256 KiB while a stream
// keeps them full, instead of net's fallback, which allocates 32 KiB per
// copy and moves 32 KiB per host call.
//
// Host names are resolved by the host (sock_getaddrinfo), where the host's
// policy decides each lookup and each answer. GoResolver returns a
// net.Resolver that instead runs Go's pure DNS client over this package's
// UDP sockets: under wasmgate it reads the virtual /etc (hosts,
// resolv.conf; present whenever the guest has a network, that is a
// policy) and queries the host's DNS stub, which answers A and AAAA
// questions through the same policy.
//
// The package compiles on every platform so that code using it can be
// built and vetted natively; outside wasip1 every function returns
// ErrUnsupported.
//
// The import shapes used are the WasmEdge "v2" ones (3-parameter
// sock_accept, 8-parameter sock_recv_from, 3-parameter
// sock_getlocaladdr/sock_getpeeraddr, by-value getsockopt length 4); see
// docs/socket-abi.md in the wasmgate repository.
package socket

import "errors"

// ErrUnsupported is returned by every function when the program was not
// compiled for GOOS=wasip1.
var ErrUnsupported = errors.New("socket: only supported on GOOS=wasip1")
