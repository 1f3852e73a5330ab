// Package policyhook lets wasmgate's built-in rule-list plugins (allowlist
// and denylist) decide the commonest request in their wasm build before
// sdk/policy decodes it: an operation on an IPv4 address with no name, no
// bound names, no labels and no local address (a connect, bind, send or
// receive by a guest without labels on an address literal; not tcp.accept,
// whose request has the local address). In a running guest every step of the SDK's path is cold code and
// data; this one step is not (BENCHMARKS.md, "The built-ins' IPv4 shortcut").
// It is internal: the verdict must be the one the plugin's handler would
// give, which only code that is tested against that handler can promise.
package policyhook

// IPv4 decides such a request. op is the index of the request's op in
// policy.Ops; addr is the address in network order, port the port. It
// returns the binary verdict's action byte (1 allow, 2 deny, 3 abstain),
// the verdict's cache TTL and its reason, or ok = false to leave the
// request to the SDK, which then decodes it and calls the plugin's handler
// as usual. sdk/policy calls it only in wasm (the fast-path export), where
// an instance runs one call at a time. A plugin sets it with Offer once its
// config is loaded.
var IPv4 func(op int, addr [4]byte, port uint16) (action byte, ttlMs int64, reason string, ok bool)

// The binary verdict's action bytes (docs/plugins.md#4-the-wire-format).
const (
	Allow   byte = 1
	Deny    byte = 2
	Abstain byte = 3
)
