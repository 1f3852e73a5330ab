package policy

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// This file holds the matching helpers the built-in plugins share: host
// patterns, CIDRs, port sets and the rule grammar of docs/plugins.md#allowlist:
//
//	[DIRECTION ]PROTO://HOST[:PORTS]     connect, bind or accept rules
//	dns://PATTERN                        allows dns.lookup/dns.answer of names

// Direction is the kind of operation a rule covers.
type Direction uint8

// The directions of the rule grammar.
const (
	DirConnect Direction = iota // tcp.connect, udp.connect, udp.send (the default)
	DirBind                     // tcp.bind, tcp.listen, udp.bind
	DirAccept                   // tcp.accept, udp.recv (HOST matches the peer)
	DirDNS                      // dns://PATTERN: dns.lookup, dns.answer
)

// String returns the keyword of d as written in rules.
func (d Direction) String() string {
	switch d {
	case DirConnect:
		return "connect"
	case DirBind:
		return "bind"
	case DirAccept:
		return "accept"
	case DirDNS:
		return "dns"
	}
	return "direction(" + strconv.Itoa(int(d)) + ")"
}

// OpDirection returns the direction an op belongs to and its protocol
// ("tcp", "udp", or "" for dns ops). ok is false for an unknown op.
func OpDirection(op Op) (d Direction, proto string, ok bool) {
	i := OpIndex(op)
	if i < 0 {
		return 0, "", false
	}
	return opDirs[i], opProtos[i], true
}

// HostKind says what a HostPattern matches.
type HostKind uint8

// The kinds of host pattern.
const (
	HostAny      HostKind = iota // "*": every address and every name
	HostName                     // one exact name
	HostWildcard                 // "*.suffix": names below suffix, never suffix itself
	HostPrefix                   // an IP address (as a /32 or /128) or a CIDR
)

// HostPattern is the HOST part of a rule.
type HostPattern struct {
	Kind HostKind
	// Name is the exact name (HostName) or the suffix without "*."
	// (HostWildcard), canonical.
	Name string
	// Prefix is the canonical, unmapped prefix of a HostPrefix pattern.
	Prefix netip.Prefix
}

// ParseHostPattern parses a HOST: "*", a name, "*.name", an IP address or a
// CIDR (IPv6 with or without brackets). Names are made lower-case and lose a
// trailing dot. A CIDR must be canonical (no bits set after the prefix
// length), because "10.1.2.3/8" is more often a typo than a wish.
func ParseHostPattern(s string) (HostPattern, error) {
	if s == "*" {
		return HostPattern{Kind: HostAny}, nil
	}
	if s == "" {
		return HostPattern{}, errors.New("empty host")
	}
	if strings.HasPrefix(s, "[") {
		if !strings.HasSuffix(s, "]") {
			return HostPattern{}, errors.New("missing ']' after IPv6 address")
		}
		inner := s[1 : len(s)-1]
		if !strings.Contains(inner, ":") {
			return HostPattern{}, errors.New("brackets are only for IPv6 addresses")
		}
		return parseIPPattern(inner)
	}
	if strings.ContainsAny(s, ":/") || isIPv4Like(s) {
		return parseIPPattern(s)
	}
	wild := false
	name := s
	if strings.HasPrefix(s, "*.") {
		wild = true
		name = s[2:]
	} else if strings.Contains(s, "*") {
		return HostPattern{}, errors.New("a wildcard must be a whole first label: write *.example.test, which matches names below example.test but not example.test itself")
	}
	name = CanonicalName(name)
	if err := checkName(name); err != nil {
		return HostPattern{}, err
	}
	if wild {
		return HostPattern{Kind: HostWildcard, Name: name}, nil
	}
	return HostPattern{Kind: HostName, Name: name}, nil
}

// isIPv4Like reports whether s consists of digits and dots only, so that a
// malformed IPv4 address is reported as such rather than as a bad name.
func isIPv4Like(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func parseIPPattern(s string) (HostPattern, error) {
	if strings.Contains(s, "%") {
		return HostPattern{}, errors.New("zoned addresses are not allowed (the host rejects them before policy)")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return HostPattern{}, errors.New("bad CIDR: " + err.Error())
		}
		if p.Addr().Is4In6() {
			return HostPattern{}, errors.New("IPv4-mapped prefix: write it as an IPv4 CIDR (addresses are unmapped before policy)")
		}
		if m := p.Masked(); m != p {
			return HostPattern{}, errors.New("CIDR has bits set after the prefix length: did you mean " + m.String() + "?")
		}
		return HostPattern{Kind: HostPrefix, Prefix: p}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return HostPattern{}, errors.New("bad IP address: " + err.Error())
	}
	a = a.Unmap()
	return HostPattern{Kind: HostPrefix, Prefix: netip.PrefixFrom(a, a.BitLen())}, nil
}

// checkName validates a canonical host name: dot-separated labels of
// letters, digits, '-' and '_', each 1-63 bytes, 253 bytes in all.
func checkName(name string) error {
	if len(name) > 253 {
		return errors.New("name longer than 253 bytes")
	}
	label := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			if label == 0 {
				return errors.New("empty label in name " + strconv.Quote(name))
			}
			if label > 63 {
				return errors.New("label longer than 63 bytes in name " + strconv.Quote(name))
			}
			label = 0
			continue
		}
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return errors.New("invalid character " + strconv.QuoteRune(rune(c)) + " in name " + strconv.Quote(name))
		}
		label++
	}
	return nil
}

// MatchName reports whether the canonical name matches the pattern: an
// exact name equals it, "*.suffix" matches one or more labels in front of
// suffix (never suffix itself), "*" matches every name; an address pattern
// matches no name.
func (h *HostPattern) MatchName(name string) bool {
	switch h.Kind {
	case HostAny:
		return true
	case HostName:
		return strEqual(name, h.Name)
	case HostWildcard:
		n := len(name) - len(h.Name)
		return n >= 2 && name[n-1] == '.' && name[n-2] != '.' && strEqual(name[n:], h.Name)
	}
	return false
}

// MatchAddr reports whether addr (unmapped before the test) is in the
// pattern's prefix; "*" matches every address, name patterns none.
func (h *HostPattern) MatchAddr(addr netip.Addr) bool {
	switch h.Kind {
	case HostAny:
		return addr.IsValid()
	case HostPrefix:
		if addr.Is6() { // an IPv4 address needs neither (no call)
			addr = addr.WithZone("").Unmap()
		}
		return h.Prefix.Contains(addr)
	}
	return false
}

// IsName reports whether the pattern matches names (exact or wildcard).
func (h *HostPattern) IsName() bool { return h.Kind == HostName || h.Kind == HostWildcard }

// String returns the pattern as it would be written in a rule.
func (h *HostPattern) String() string {
	switch h.Kind {
	case HostAny:
		return "*"
	case HostName:
		return h.Name
	case HostWildcard:
		return "*." + h.Name
	}
	if h.Prefix.Addr().Is6() {
		if h.Prefix.IsSingleIP() {
			return "[" + h.Prefix.Addr().String() + "]"
		}
		return "[" + h.Prefix.String() + "]"
	}
	if h.Prefix.IsSingleIP() {
		return h.Prefix.Addr().String()
	}
	return h.Prefix.String()
}

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// PortSet is the PORTS part of a rule: a list of ranges; nil matches every
// port.
type PortSet []PortRange

// ParsePorts parses "443", "80,443", "8000-8999" (inclusive), a mix such as
// "80,8000-8999", or "*" (every port, returned as nil).
func ParsePorts(s string) (PortSet, error) {
	if s == "*" {
		return nil, nil
	}
	if s == "" {
		return nil, errors.New("empty port list (omit the ':' or write '*' for every port)")
	}
	var set PortSet
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parsePort(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil {
				return nil, err
			}
			if b < a {
				return nil, errors.New("port range " + strconv.Quote(part) + " ends before it starts")
			}
		}
		set = append(set, PortRange{a, b})
	}
	return set, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("bad port " + strconv.Quote(s) + ": want a number 0-65535")
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, errors.New("bad port " + strconv.Quote(s) + ": want a number 0-65535")
	}
	return uint16(n), nil
}

// Match reports whether port is in the set (nil: every port).
func (ps PortSet) Match(port uint16) bool {
	if ps == nil {
		return true
	}
	for _, r := range ps {
		if r.Lo <= port && port <= r.Hi {
			return true
		}
	}
	return false
}

// String returns the set as written in a rule ("*" for every port).
func (ps PortSet) String() string {
	if ps == nil {
		return "*"
	}
	var b []byte
	for i, r := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(r.Lo), 10)
		if r.Hi != r.Lo {
			b = append(b, '-')
			b = strconv.AppendUint(b, uint64(r.Hi), 10)
		}
	}
	return string(b)
}

// Rule is one parsed rule of the allowlist/denylist grammar.
type Rule struct {
	Text  string      // the rule as written
	Dir   Direction   // which ops it covers
	Proto string      // "tcp", "udp" or "*" ("" for dns rules)
	Host  HostPattern // what the address, names or DNS name must match
	Ports PortSet     // nil: every port
}

// RuleError is a rule that does not parse. Its message quotes the rule.
type RuleError struct {
	Rule string
	Err  error
}

func (e *RuleError) Error() string { return "rule " + strconv.Quote(e.Rule) + ": " + e.Err.Error() }

// Unwrap returns the underlying problem.
func (e *RuleError) Unwrap() error { return e.Err }

// ParseRule parses one rule, `[DIRECTION ]PROTO://HOST[:PORTS]` or
// `dns://PATTERN` (see docs/plugins.md#6-the-built-in-plugins). Names only make sense for connect
// rules (only outbound requests carry bound names), so bind and accept
// rules need an address, a CIDR or "*".
func ParseRule(s string) (Rule, error) {
	r, err := parseRule(strings.TrimSpace(s))
	if err != nil {
		return Rule{}, &RuleError{Rule: s, Err: err}
	}
	r.Text = s
	return r, nil
}

func parseRule(s string) (Rule, error) {
	var r Rule
	dirWord, rest, hasDir := strings.Cut(s, " ")
	if hasDir && strings.Contains(dirWord, "://") {
		return Rule{}, errors.New("unexpected space in host or ports")
	}
	if hasDir {
		switch dirWord {
		case "connect":
			r.Dir = DirConnect
		case "bind":
			r.Dir = DirBind
		case "accept":
			r.Dir = DirAccept
		default:
			return Rule{}, errors.New("unknown direction " + strconv.Quote(dirWord) + ": want connect, bind or accept")
		}
		s = strings.TrimLeft(rest, " ")
	}
	proto, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Rule{}, errors.New("missing \"://\": want [DIRECTION ]PROTO://HOST[:PORTS], e.g. tcp://api.example.test:443")
	}
	if strings.ContainsAny(rest, " \t") {
		return Rule{}, errors.New("unexpected space in host or ports")
	}
	switch proto {
	case "tcp":
		r.Proto = "tcp" // the constant, not the config's bytes: Match compares pointers first
	case "udp":
		r.Proto = "udp"
	case "*":
		r.Proto = "*"
	case "dns":
		if hasDir {
			return Rule{}, errors.New("dns rules take no direction")
		}
		if strings.Contains(rest, ":") {
			return Rule{}, errors.New("dns rules take no ports: want dns://NAME, dns://*.SUFFIX or dns://*")
		}
		h, err := ParseHostPattern(rest)
		if err != nil {
			return Rule{}, err
		}
		if h.Kind == HostPrefix {
			return Rule{}, errors.New("dns rules match names: want dns://NAME, dns://*.SUFFIX or dns://*")
		}
		r.Dir, r.Host = DirDNS, h
		return r, nil
	default:
		return Rule{}, errors.New("unknown protocol " + strconv.Quote(proto) + ": want tcp, udp, * or dns")
	}
	host, ports := rest, ""
	hasPorts := false
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return Rule{}, errors.New("missing ']' after IPv6 address")
		}
		host = rest[:end+1]
		if after := rest[end+1:]; after != "" {
			if after[0] != ':' {
				return Rule{}, errors.New("unexpected " + strconv.Quote(after) + " after ']'")
			}
			ports, hasPorts = after[1:], true
		}
	} else if strings.Count(rest, ":") > 1 {
		return Rule{}, errors.New("IPv6 addresses must be in brackets, e.g. tcp://[2001:db8::1]:443")
	} else if i := strings.IndexByte(rest, ':'); i >= 0 {
		host, ports, hasPorts = rest[:i], rest[i+1:], true
	}
	h, err := ParseHostPattern(host)
	if err != nil {
		return Rule{}, err
	}
	if h.IsName() && r.Dir != DirConnect {
		return Rule{}, errors.New(r.Dir.String() + " rules match addresses, not names: names are only bound to outbound destinations; use an IP, a CIDR or *")
	}
	r.Host = h
	if hasPorts {
		if r.Ports, err = ParsePorts(ports); err != nil {
			return Rule{}, err
		}
	}
	return r, nil
}

// Match reports whether the rule covers req (canonical, as handlers receive
// it):
//   - connect/bind/accept rules: the op has the rule's direction and
//     protocol, the port is in PORTS, and HOST matches the address or (name
//     patterns) one of the names bound to it;
//   - dns.lookup and dns.answer: a dns:// rule whose pattern matches Name, or
//     a connect rule whose HOST pattern matches Name (an address pattern never
//     does), so that allowing tcp://api.example.test:443 also allows
//     resolving api.example.test.
func (r *Rule) Match(req *Request) bool { return r.matchOp(OpIndex(req.Op), req) }

// matchOp is Match with the request's OpIndex, i.
func (r *Rule) matchOp(i int, req *Request) bool {
	if i < 0 {
		return false
	}
	dir := opDirs[i]
	if dir == DirDNS {
		if r.Dir != DirDNS && r.Dir != DirConnect {
			return false
		}
		return req.Name != "" && r.Host.MatchName(req.Name)
	}
	if r.Dir != dir || (r.Proto != "*" && !eqStr(r.Proto, opProtos[i])) || !r.Ports.Match(req.Port) {
		return false
	}
	if r.Host.IsName() {
		for _, n := range req.Names {
			if r.Host.MatchName(n) {
				return true
			}
		}
		return false
	}
	return r.Host.MatchAddr(req.Addr)
}

// MatchDeny is Match for a rule that denies: an address pattern (an IP or a
// CIDR) also matches when one of the IPv4 addresses embedded in the
// request's IPv6 address (Request.EmbeddedIPv4: NAT64, 6to4, Teredo,
// IPv4-compatible) is in it, so that denying an IPv4 range denies every
// IPv6 form that reaches it. Match, which allow rules use, does not: an
// allow rule for 127.0.0.0/8 does not allow 64:ff9b::7f00:1; a rule naming
// the IPv6 form does (docs/plugins.md, "Embedded IPv4").
func (r *Rule) MatchDeny(req *Request) bool {
	if r.Match(req) {
		return true
	}
	if r.Host.Kind != HostPrefix || len(req.EmbeddedIPv4) == 0 {
		return false
	}
	i := OpIndex(req.Op)
	if i < 0 || opDirs[i] == DirDNS {
		return false
	}
	if r.Dir != opDirs[i] || (r.Proto != "*" && !eqStr(r.Proto, opProtos[i])) || !r.Ports.Match(req.Port) {
		return false
	}
	for _, a := range req.EmbeddedIPv4 {
		if a.Is4() && r.Host.Prefix.Contains(a) {
			return true
		}
	}
	return false
}

// ParseRules parses every rule and returns all problems at once, joined, so
// that a manifest with several bad rules is fixed in one pass.
func ParseRules(rules []string) (RuleSet, error) {
	out := make(RuleSet, 0, len(rules))
	var errs []error
	for _, s := range rules {
		r, err := ParseRule(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	if errs != nil {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// RuleSet is an ordered list of rules, as the allowlist and denylist keep
// them.
type RuleSet []Rule

// First returns the first rule that matches req, or nil.
func (rs RuleSet) First(req *Request) *Rule {
	if k := rs.Index(req); k >= 0 {
		return &rs[k]
	}
	return nil
}

// Index returns the index of the first rule in rs that matches req
// (Rule.Match), or -1. It finds the request's op once for all rules.
func (rs RuleSet) Index(req *Request) int {
	i := OpIndex(req.Op)
	for k := range rs {
		if rs[k].matchOp(i, req) {
			return k
		}
	}
	return -1
}

// Ops returns, in the order of Ops, the operations that some rule of rs can
// match (see Rule.Match). A plugin describes itself with them so that the
// host does not call it for operations it would always abstain on.
func (rs RuleSet) Ops() []Op {
	var out []Op
	for _, op := range Ops {
		dir, proto, _ := OpDirection(op)
		for i := range rs {
			r := &rs[i]
			var can bool
			if dir == DirDNS {
				can = r.Dir == DirDNS || (r.Dir == DirConnect && r.Host.Kind != HostPrefix)
			} else {
				can = r.Dir == dir && (r.Proto == "*" || r.Proto == proto)
			}
			if can {
				out = append(out, op)
				break
			}
		}
	}
	return out
}

// PortFreeOps returns the operations of ops for which no rule of rs looks at
// the request's port: dns ops (Match reads only Name there), and ops of a
// direction and protocol whose matching rules all have every port (no
// ":PORTS" or ":*"). A rule-list plugin declares them as
// Description.IgnoresPort, so that the host keys its cached verdicts for
// those ops without the port: the verdict on a request is then the same for
// every port, which is what makes that safe.
func (rs RuleSet) PortFreeOps(ops []Op) []Op {
	var out []Op
	for _, op := range ops {
		dir, proto, ok := OpDirection(op)
		if !ok {
			continue
		}
		free := true
		if dir != DirDNS {
			for i := range rs {
				r := &rs[i]
				if r.Dir == dir && (r.Proto == "*" || r.Proto == proto) && r.Ports != nil {
					free = false
					break
				}
			}
		}
		if free {
			out = append(out, op)
		}
	}
	return out
}
