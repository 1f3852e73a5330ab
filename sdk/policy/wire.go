// Package policy is the wire contract between wasmgate and its policy
// plugins, and the SDK that plugin authors use to write them.
//
// The types in this file are plain Go: they compile for the host (which
// imports them to encode requests and decode verdicts) and for plugins
// (GOOS=wasip1), so that both sides share exactly one definition and plugin
// handlers can be unit-tested natively. The wire format is JSON; see
// docs/plugins.md#4-the-wire-format and docs/plugins.md. Plugins built with this package also
// export wasmgate's fast path (wasmgate_buffer, wasmgate_decide), which
// wasmgate uses instead of the Extism decide export: a binary request and
// verdict in the plugin's own memory (binary.go, docs/plugins.md). The
// order of Ops is part of that encoding.
package policy

import "net/netip"

// Op names one kind of network decision. The set is closed: a host never
// sends an op outside it, and a plugin should abstain (or deny) on an op it
// does not know.
type Op string

// The operations of docs/policy.md#ops.
const (
	OpDNSLookup  Op = "dns.lookup"  // guest asks to resolve Name
	OpDNSAnswer  Op = "dns.answer"  // one resolved address (Name, Addr)
	OpTCPConnect Op = "tcp.connect" // Addr:Port remote, Names bound to Addr
	OpTCPBind    Op = "tcp.bind"    // Addr:Port local (explicit, or implicit bind of listen)
	OpTCPListen  Op = "tcp.listen"  // Addr:Port local, after bind
	OpTCPAccept  Op = "tcp.accept"  // Addr:Port peer, Local the listening address
	OpUDPBind    Op = "udp.bind"    // Addr:Port local
	OpUDPConnect Op = "udp.connect" // Addr:Port default peer, Names
	OpUDPSend    Op = "udp.send"    // Addr:Port destination, Names
	OpUDPRecv    Op = "udp.recv"    // Addr:Port peer of an arrived datagram
)

// Ops lists every operation, in the order of docs/policy.md#ops. The binary
// encoding numbers ops by their position here: append, never reorder.
var Ops = []Op{
	OpDNSLookup, OpDNSAnswer,
	OpTCPConnect, OpTCPBind, OpTCPListen, OpTCPAccept,
	OpUDPBind, OpUDPConnect, OpUDPSend, OpUDPRecv,
}

// Valid reports whether op is one of Ops.
func (op Op) Valid() bool {
	for _, o := range Ops {
		if o == op {
			return true
		}
	}
	return false
}

// Proto returns the transport protocol of op: "tcp", "udp", or "" for the
// dns ops.
func (op Op) Proto() string {
	switch op {
	case OpTCPConnect, OpTCPBind, OpTCPListen, OpTCPAccept:
		return "tcp"
	case OpUDPBind, OpUDPConnect, OpUDPSend, OpUDPRecv:
		return "udp"
	}
	return ""
}

// Request is one decision the host asks a plugin to make. Fields that do not
// apply to an op are zero and omitted on the wire. Addresses are canonical:
// IPv4-mapped IPv6 is unmapped, zones never appear, names are lower-case
// ASCII without a trailing dot.
type Request struct {
	Op    Op         `json:"op"`
	Proto string     `json:"proto,omitempty"` // "tcp" or "udp"; empty for dns ops
	Addr  netip.Addr `json:"addr,omitzero"`   // remote, local or answered address (see Op)
	Port  uint16     `json:"port,omitempty"`
	// EmbeddedIPv4 are the IPv4 addresses an IPv6 Addr embeds (NAT64,
	// 6to4, Teredo, IPv4-compatible; see EmbeddedIPv4), derived from Addr:
	// the SDK recomputes them (Canonical), the binary encoding does not
	// carry them. Deny rules for an IPv4 range match them; allow rules do
	// not (docs/plugins.md, "Embedded IPv4").
	EmbeddedIPv4 []netip.Addr      `json:"embedded_ipv4,omitempty"`
	Names        []string          `json:"names,omitempty"` // names bound to Addr, most recent first
	Name         string            `json:"name,omitempty"`  // dns ops: the name looked up
	Local        netip.AddrPort    `json:"local,omitzero"`  // tcp.accept: the listener's local address
	Guest        string            `json:"guest,omitempty"` // guest identity from the manifest
	Labels       map[string]string `json:"labels,omitempty"`
	TimeMs       int64             `json:"time_ms,omitempty"` // host wall clock, Unix ms
}

// Action is the decision part of a Verdict. The zero Action, like any string
// other than "allow" and "abstain", means deny.
type Action string

// The actions a plugin may return.
const (
	ActionAllow   Action = "allow"
	ActionDeny    Action = "deny"
	ActionAbstain Action = "abstain"
)

// Verdict is a plugin's answer to a Request. The zero Verdict denies.
type Verdict struct {
	Verdict    Action `json:"verdict"`
	Reason     string `json:"reason,omitempty"`
	CacheTTLMs int64  `json:"cache_ttl_ms,omitempty"` // >0: host may reuse for an identical request
}

// Allowed reports whether v allows. Anything but an explicit allow is not.
func (v Verdict) Allowed() bool { return v.Verdict == ActionAllow }

// Allow returns an allowing verdict with a reason.
func Allow(reason string) Verdict { return Verdict{Verdict: ActionAllow, Reason: reason} }

// Deny returns a denying verdict with a reason.
func Deny(reason string) Verdict { return Verdict{Verdict: ActionDeny, Reason: reason} }

// Abstain returns a verdict that leaves the decision to the rest of the chain.
func Abstain() Verdict { return Verdict{Verdict: ActionAbstain} }
