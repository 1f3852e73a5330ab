package network

import (
	"io"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// MaxDenyNotices is how many distinct (op, destination) pairs one
// DenyNotifier remembers and reports. Past it, one last line says that
// further denials are only in the audit log: a guest that probes many
// destinations must neither grow the host's memory nor flood its stderr.
const MaxDenyNotices = 1024

// maxNoticeText bounds how much of a plugin-supplied text (reason, plugin
// name) goes into a notice line, in runes.
const maxNoticeText = 200

// SuggestRule returns the allowlist rule (the rule grammar of docs/plugins.md#allowlist,
// `[DIRECTION ]PROTO://HOST[:PORTS]`) that matches exactly the denied
// request, or "" when there is none (an unknown op, an invalid address or
// name):
//
//   - tcp.connect → tcp://HOST:PORT; udp.connect and udp.send →
//     udp://HOST:PORT. HOST is the most recently bound name when the guest
//     resolved one (the rule then also allows resolving it), else the
//     address, IPv6 in brackets;
//   - tcp.bind, tcp.listen → bind tcp://ADDR:PORT; udp.bind → bind
//     udp://ADDR:PORT;
//   - tcp.accept → accept tcp://PEER; udp.recv → accept udp://PEER. PEER
//     is the peer's address without port (its port is the peer's
//     ephemeral choice). Names are not used: the grammar allows names
//     only in connect rules, because only outbound destinations are bound;
//   - dns.lookup, dns.answer → dns://NAME.
//
// The result is checked with the rule parser and matcher the built-in
// plugins use, so what SuggestRule returns parses and allows the request
// when an allowlist plugin with it is the only plugin that decides.
func SuggestRule(de *DeniedError) string {
	if de == nil {
		return ""
	}
	dir, proto, ok := policy.OpDirection(de.Op)
	if !ok {
		return ""
	}
	req := &policy.Request{Op: de.Op, Port: de.Addr.Port()}
	var rule string
	if dir == policy.DirDNS {
		n, err := CanonicalName(de.Name)
		if err != nil {
			return ""
		}
		req.Name = n
		rule = "dns://" + n
	} else {
		a, err := CanonicalAddr(de.Addr.Addr())
		if err != nil {
			return ""
		}
		req.Addr = a
		host := ruleHost(a)
		port := ":" + strconv.Itoa(int(de.Addr.Port()))
		switch dir {
		case policy.DirConnect:
			if n := boundName(de.Names); n != "" {
				host, req.Names = n, []string{n}
			}
			rule = proto + "://" + host + port
		case policy.DirBind:
			rule = "bind " + proto + "://" + host + port
		case policy.DirAccept:
			rule = "accept " + proto + "://" + host
		}
	}
	r, err := policy.ParseRule(rule)
	if err != nil || !r.Match(req) {
		return ""
	}
	return rule
}

// boundName returns the first (most recent) of names that is a canonical
// name, or "".
func boundName(names []string) string {
	for _, n := range names {
		if c, err := CanonicalName(n); err == nil && c == n {
			return n
		}
	}
	return ""
}

// ruleHost writes a canonical address as a rule's HOST: IPv6 in brackets.
func ruleHost(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

// DenyNotifier returns a function for Default.OnDeny that tells the user,
// on w (normally stderr), about denials (docs/policy.md#hint):
//
//   - when the Default has no Policy, one line for the first denial, that
//     no --policy was given, and nothing after it;
//   - otherwise one line the first time per (op, destination), with the
//     reason and the rule that would allow it (SuggestRule): to add to an
//     allowlist plugin when no plugin denied explicitly (every plugin
//     abstained and the manifest default denied), or, when a plugin did
//     deny, a reminder that its deny wins over any allow. The destination
//     of a dns op is the name, of tcp.accept and udp.recv the peer's
//     address (not its ephemeral port), of other ops address and port.
//
// It remembers at most MaxDenyNotices destinations. It is safe for
// concurrent use; lines are written whole, one Write each, and write
// errors are ignored (the audit log is the record, this is a hint).
// Plugin-supplied text is stripped of control characters and shortened,
// so that nothing a plugin or guest chooses can forge or garble other
// lines of the terminal. Use one notifier per Default (guest instance).
func DenyNotifier(w io.Writer) func(*DeniedError) {
	n := &denyNotifier{w: w, seen: make(map[string]struct{})}
	return n.notify
}

type denyNotifier struct {
	w io.Writer

	mu       sync.Mutex // guards the fields below and serialises writes
	seen     map[string]struct{}
	noPolicy bool // the no-policy line was written
	full     bool // the "too many" line was written
}

func (n *denyNotifier) notify(de *DeniedError) {
	if de == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var line string
	switch {
	case de.NoPolicy:
		if n.noPolicy {
			return
		}
		n.noPolicy = true
		line = "wasmgate: network access denied: no --policy given (denied " + string(de.Op) + " " + denyDest(de, false) + ")\n"
	default:
		k := denyKey(de)
		if _, ok := n.seen[k]; ok || n.full {
			return
		}
		if len(n.seen) >= MaxDenyNotices {
			n.full = true
			line = "wasmgate: more than " + strconv.Itoa(MaxDenyNotices) + " distinct network denials; further ones are only in the audit log\n"
			break
		}
		n.seen[k] = struct{}{}
		line = denyLine(de)
	}
	io.WriteString(n.w, line)
}

// denyKey is the (op, destination) identity of a denial.
func denyKey(de *DeniedError) string {
	var dest string
	switch de.Op {
	case policy.OpDNSLookup, policy.OpDNSAnswer:
		dest = de.Name
	case policy.OpTCPAccept, policy.OpUDPRecv:
		dest = de.Addr.Addr().String()
	default:
		dest = de.Addr.String()
	}
	// Names are at most 253 bytes when canonical; a hand-made
	// DeniedError could carry anything.
	if len(dest) > 300 {
		dest = dest[:300]
	}
	return string(de.Op) + " " + dest
}

// denyDest describes the destination of a denial: the name for
// dns.lookup, else the address (with port except for dns.answer) and, if
// withName, the name in parentheses.
func denyDest(de *DeniedError, withName bool) string {
	if de.Op == policy.OpDNSLookup {
		return clean(de.Name)
	}
	var s string
	switch {
	case !de.Addr.IsValid():
		s = "?"
	case de.Op == policy.OpDNSAnswer:
		s = de.Addr.Addr().String()
	default:
		s = de.Addr.String()
	}
	s = clean(s)
	if !withName {
		return s
	}
	name := de.Name
	if name == "" && len(de.Names) > 0 {
		name = de.Names[0]
	}
	if name != "" {
		s += " (" + clean(name) + ")"
	}
	return s
}

// denyLine is the notice for the first denial of one (op, destination).
func denyLine(de *DeniedError) string {
	var b strings.Builder
	b.WriteString("wasmgate: denied ")
	b.WriteString(clean(string(de.Op)))
	b.WriteByte(' ')
	b.WriteString(denyDest(de, true))
	plugin := clean(de.Plugin)
	if plugin != "" {
		b.WriteString(" by ")
		b.WriteString(plugin)
	}
	if r := clean(de.Reason); r != "" {
		b.WriteString(": ")
		b.WriteString(r)
	}
	rule := SuggestRule(de)
	switch {
	case rule == "":
	case plugin == "":
		b.WriteString(`; to allow it add to an allowlist plugin: rules = ["`)
		b.WriteString(rule)
		b.WriteString(`"]`)
	default:
		// Any deny wins (docs/policy.md#chain): an allowlist rule alone would
		// not help, the denying plugin's configuration must change.
		b.WriteString(`; plugin `)
		b.WriteString(plugin)
		b.WriteString(` denied it and a deny wins over any allow, so an allowlist rule ("`)
		b.WriteString(rule)
		b.WriteString(`") is not enough: change that plugin's config`)
	}
	b.WriteByte('\n')
	return b.String()
}

// clean makes untrusted text safe for one terminal line: control and
// format characters (newlines, escapes, bidi overrides) and invalid UTF-8
// become '?', and the text is cut to maxNoticeText runes.
func clean(s string) string {
	ok := len(s) <= maxNoticeText
	for i := 0; ok && i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			ok = false
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if n == maxNoticeText {
			b.WriteString("...")
			break
		}
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) ||
			r == '\u2028' || r == '\u2029' {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
