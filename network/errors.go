package network

import (
	"errors"
	"net/netip"
)

// ErrDenied is matched (errors.Is) by every error that a policy denial
// causes. The host maps it to WASI EACCES.
var ErrDenied = errors.New("permission denied by policy")

// DeniedError says which operation a policy denied, on which address, and
// why. It matches ErrDenied.
type DeniedError struct {
	Op     Op
	Addr   netip.AddrPort // zero for dns.lookup
	Name   string         // dns ops: the name
	Plugin string         // the plugin that denied, when known
	Reason string
	// Names are the names bound to Addr when the request carried them
	// (connect, send, accept, recv), most recently resolved first, so
	// that a message or a suggested rule can name the destination as the
	// guest knew it.
	Names []string
	// NoPolicy is true when the deny came from a Default without a
	// Policy (no --policy given), not from any plugin.
	NoPolicy bool
}

func (e *DeniedError) Error() string {
	s := "wasmgate: " + string(e.Op)
	switch {
	case e.Addr.IsValid() && e.Addr.Port() != 0:
		s += " " + e.Addr.String()
	case e.Addr.IsValid():
		s += " " + e.Addr.Addr().String()
	}
	if e.Name != "" {
		s += " (" + e.Name + ")"
	}
	s += ": denied"
	if e.Plugin != "" {
		s += " by " + e.Plugin
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Is makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// OpError is the error type returned by sockets and resolvers: the operation,
// the network, the address, and the cause (a syscall.Errno, a *DeniedError,
// or another error).
type OpError struct {
	Op   string // "bind", "connect", "listen", "accept", "recv", "send", "resolve", ...
	Net  string // "tcp", "udp", "dns"
	Addr string // the address or name involved, if any
	Err  error
}

func (e *OpError) Error() string {
	s := e.Op
	if e.Net != "" {
		s += " " + e.Net
	}
	if e.Addr != "" {
		s += " " + e.Addr
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }
