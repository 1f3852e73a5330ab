// Package ruletable compiles the rules of a rule-list plugin (allowlist,
// denylist) into a table that decides the requests of internal/policyhook
// (to an IPv4 address, carrying no names) as RuleSet.Index would match them,
// with a loop over a few words per rule and no call: the built-in rule
// lists' shortcut in wasm.
package ruletable

import (
	"encoding/binary"

	"github.com/wasmgate/wasmgate/internal/policyhook"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// Table is a compiled RuleSet with the verdicts of its plugin.
type Table struct {
	rules []rule
	// dns has bit i set when policy.Ops[i] is a dns op: those requests
	// carry a name and are never decided here.
	dns uint32
	// hit is the action byte of a matching rule's verdict, whose reason is
	// reasons[k]; no match abstains. Every verdict has the cache TTL ttlMs.
	hit     byte
	ttlMs   int64
	reasons []string
}

type rule struct {
	ops        uint32 // bit i: the rule can match policy.Ops[i] (direction and protocol)
	addr, mask uint32 // the IPv4 prefix; mask 0 with addr 0 matches every address
	ports      policy.PortSet
}

// Compile builds the table of rs for a plugin whose verdict is hit (a
// policyhook action byte) with the reason reasons[k] when rule k is the
// first to match, abstain when none does, and the cache TTL ttlMs either
// way. A rule that can never match a request to an IPv4 address without
// names (a dns:// rule, a name pattern, an IPv6 prefix) gets no ops, so
// that the indexes stay those of rs.
func Compile(rs policy.RuleSet, hit byte, ttlMs int64, reasons []string) *Table {
	if len(policy.Ops) > 32 {
		panic("ruletable: more than 32 ops")
	}
	if len(reasons) != len(rs) {
		panic("ruletable: one reason per rule")
	}
	t := &Table{hit: hit, ttlMs: ttlMs, reasons: reasons, rules: make([]rule, len(rs))}
	for i, op := range policy.Ops {
		if dir, _, _ := policy.OpDirection(op); dir == policy.DirDNS {
			t.dns |= 1 << i
		}
	}
	for k := range rs {
		r := &rs[k]
		var c rule
		switch {
		case r.Dir == policy.DirDNS:
			// Matches dns ops only, which this table never decides.
		case r.Host.Kind == policy.HostAny:
			c.ops = opsOf(r)
		case r.Host.Kind == policy.HostPrefix && r.Host.Prefix.Addr().Is4():
			a := r.Host.Prefix.Addr().As4()
			c.ops = opsOf(r)
			if bits := r.Host.Prefix.Bits(); bits > 0 {
				c.mask = ^uint32(0) << (32 - bits)
			}
			c.addr = binary.BigEndian.Uint32(a[:]) & c.mask
		default:
			// A name or wildcard matches only bound names (none here); an
			// IPv6 prefix never contains an IPv4 address.
		}
		c.ports = r.Ports
		t.rules[k] = c
	}
	return t
}

// opsOf is the set of non-dns ops whose direction and protocol r covers,
// as Rule.Match decides them.
func opsOf(r *policy.Rule) uint32 {
	var set uint32
	for i, op := range policy.Ops {
		dir, proto, _ := policy.OpDirection(op)
		if dir != policy.DirDNS && dir == r.Dir && (r.Proto == "*" || r.Proto == proto) {
			set |= 1 << i
		}
	}
	return set
}

// Decide is the plugin's verdict on a request of policy.Ops[op] to
// addr:port (addr in network order) with no name and no bound names, as
// policyhook.IPv4 returns it: hit and the first matching rule's reason, or
// abstain. ok is false when op is out of range or a dns op. It is one
// function without calls, so that a decision in a running guest touches
// little cold code.
func (t *Table) Decide(op int, addr [4]byte, port uint16) (action byte, ttlMs int64, reason string, ok bool) {
	if op < 0 || op >= len(policy.Ops) || t.dns&(1<<op) != 0 {
		return 0, 0, "", false
	}
	a := binary.BigEndian.Uint32(addr[:])
	bit := uint32(1) << op
	for k := range t.rules {
		r := &t.rules[k]
		if r.ops&bit != 0 && a&r.mask == r.addr && r.ports.Match(port) {
			return t.hit, t.ttlMs, t.reasons[k], true
		}
	}
	return policyhook.Abstain, t.ttlMs, "", true
}
