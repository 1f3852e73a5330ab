package network

import "github.com/wasmgate/wasmgate/sdk/policy"

// The ops a Policy decides (docs/policy.md), so that a Go policy needs
// only this package; they are the plugin SDK's, sdk/policy.
const (
	OpDNSLookup  = policy.OpDNSLookup  // the guest resolves Request.Name
	OpDNSAnswer  = policy.OpDNSAnswer  // one resolved address (Name, Addr)
	OpTCPConnect = policy.OpTCPConnect // Addr:Port remote, Names bound to Addr
	OpTCPBind    = policy.OpTCPBind    // Addr:Port local
	OpTCPListen  = policy.OpTCPListen  // Addr:Port local, after bind
	OpTCPAccept  = policy.OpTCPAccept  // Addr:Port peer, Local the listener's address
	OpUDPBind    = policy.OpUDPBind    // Addr:Port local
	OpUDPConnect = policy.OpUDPConnect // Addr:Port default peer, Names
	OpUDPSend    = policy.OpUDPSend    // Addr:Port destination, Names
	OpUDPRecv    = policy.OpUDPRecv    // Addr:Port sender of an arrived datagram
)

// Allow is a verdict that allows, with a reason for the audit log.
func Allow(reason string) Verdict { return policy.Allow(reason) }

// Deny is a verdict that denies, with a reason the guest's user sees.
func Deny(reason string) Verdict { return policy.Deny(reason) }

// Abstain is the verdict of a policy with no opinion (see All).
func Abstain() Verdict { return policy.Abstain() }
