// Package specialranges is the built-in wasmgate policy plugin that denies
// outbound traffic and DNS answers to special-purpose addresses
// (docs/plugins.md#special-ranges): loopback, private, link-local and cloud
// metadata, CGNAT, unspecified,
// multicast, broadcast, documentation, benchmarking, reserved, and IPv6
// outside 2000::/3, per package sdk/policy/special. It abstains otherwise.
//
// IPv6 addresses that embed an IPv4 address (NAT64 64:ff9b::/96 and
// 64:ff9b:1::/48, 6to4 2002::/16, Teredo 2001::/32; Request.EmbeddedIPv4)
// are denied when an embedded IPv4 address (for Teredo the client or the
// server) is special: 64:ff9b::7f00:1 reaches 127.0.0.1
// through the translator. With a public embedded address they are left to
// the rest of the chain, so that IPv6-only networks using NAT64 keep working.
//
// Ops: tcp.connect, udp.connect, udp.send, dns.answer. Binds, listens,
// accepts and receives are not its business.
//
// Config ([plugins.config] in the manifest):
//
//	except = ["198.51.100.0/24", "fd00:1234::/32"]   # never denied (also as embedded IPv4)
//	except = ["udp://192.0.2.53:53", "tcp://198.51.100.0/24"]   # scoped: only this protocol and these ports
//	cache_ttl = "1m"   # how long the host may reuse a verdict; "0s" disables; default 1m
//
// The plugin's package main is ./plugin (build: GOOS=wasip1 GOARCH=wasm go
// build -buildmode=c-shared ./plugins/special-ranges/plugin); wasmgate embeds it in
// the bundle of built-ins (package plugins/builtin).
package specialranges

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmgate/wasmgate/sdk/policy"
	"github.com/wasmgate/wasmgate/sdk/policy/special"
)

type config struct {
	Except   []string
	CacheTTL string
}

type specialRanges struct {
	except []netip.Prefix // plain entries: every op and port
	scoped []scoped       // allowlist-style entries
	// portScoped: a scoped entry names ports, so connect verdicts depend
	// on the port and describe must not declare ignores_port for them.
	portScoped bool
	ttlMs      int64
}

// scoped is an except entry written as an allowlist rule, PROTO://HOST[:PORTS]
// (sdk/policy rule syntax, connect direction, HOST an address or CIDR): it
// excepts connects and sends of that protocol to those ports only, and
// dns.answer records of those addresses (the answer only binds a name; the
// connect that follows is still scoped).
type scoped struct {
	prefix netip.Prefix
	proto  string // "tcp", "udp" or "*"
	ports  policy.PortSet
}

const defaultCacheTTL = time.Minute

// ops are the operations this plugin decides.
var ops = []policy.Op{policy.OpDNSAnswer, policy.OpTCPConnect, policy.OpUDPConnect, policy.OpUDPSend}

func newSpecialRanges(c config) (*specialRanges, error) {
	s := &specialRanges{ttlMs: defaultCacheTTL.Milliseconds()}
	var errs []error
	for _, e := range c.Except {
		if strings.Contains(e, "://") {
			sc, err := parseScoped(e)
			if err != nil {
				errs = append(errs, errors.New("except "+strconv.Quote(e)+": "+err.Error()))
				continue
			}
			s.scoped = append(s.scoped, sc)
			s.portScoped = s.portScoped || sc.ports != nil
			continue
		}
		h, err := policy.ParseHostPattern(e)
		if err != nil || h.Kind != policy.HostPrefix {
			if err == nil {
				err = errors.New("want an IP address or CIDR, or a scoped entry such as udp://192.0.2.53:53")
			}
			errs = append(errs, errors.New("except "+strconv.Quote(e)+": "+err.Error()))
			continue
		}
		s.except = append(s.except, h.Prefix)
	}
	if c.CacheTTL != "" {
		d, err := time.ParseDuration(c.CacheTTL)
		if err != nil || d < 0 {
			errs = append(errs, errors.New("cache_ttl "+strconv.Quote(c.CacheTTL)+": want a duration such as \"1m\" or \"0s\""))
		}
		s.ttlMs = d.Milliseconds()
	}
	if errs != nil {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// parseScoped parses a scoped except entry with the allowlist's rule
// parser. Only connect rules to addresses make sense here: a name would be
// whatever DNS says (the rebinding this plugin guards against), "*" would
// except every special address, and binds and accepts are not its business.
func parseScoped(e string) (scoped, error) {
	r, err := policy.ParseRule(e)
	if err != nil {
		var re *policy.RuleError
		if errors.As(err, &re) {
			err = re.Err
		}
		return scoped{}, err
	}
	switch {
	case r.Dir == policy.DirDNS:
		return scoped{}, errors.New("dns rules are not exceptions: want tcp://, udp:// or *:// with an IP address or CIDR")
	case r.Dir != policy.DirConnect:
		return scoped{}, errors.New("only connect rules: special-ranges does not judge binds and accepts")
	case r.Host.Kind != policy.HostPrefix:
		return scoped{}, errors.New("want an IP address or CIDR as host, not a name or *: a name is whatever DNS answers")
	}
	return scoped{prefix: r.Host.Prefix, proto: r.Proto, ports: r.Ports}, nil
}

// excepted reports whether an entry excepts address a (the request's or
// one it embeds) for request r.
func (s *specialRanges) excepted(r *policy.Request, a netip.Addr) bool {
	for _, p := range s.except {
		if p.Contains(a) {
			return true
		}
	}
	if len(s.scoped) == 0 {
		return false
	}
	_, proto, _ := policy.OpDirection(r.Op)
	for i := range s.scoped {
		sc := &s.scoped[i]
		if !sc.prefix.Contains(a) {
			continue
		}
		if proto == "" { // dns.answer
			return true
		}
		if (sc.proto == "*" || sc.proto == proto) && sc.ports.Match(r.Port) {
			return true
		}
	}
	return false
}

// opDecided[i] is whether the plugin decides Ops[i] (indexed with
// policy.OpIndex: a switch on the op string costs byte loops in wasm).
var opDecided = func() (t [16]bool) {
	for _, op := range ops {
		t[policy.OpIndex(op)] = true
	}
	return t
}()

func (s *specialRanges) decide(r *policy.Request) policy.Verdict {
	if i := policy.OpIndex(r.Op); i < 0 || !opDecided[i] {
		return policy.Abstain()
	}
	a := r.Addr
	if !a.IsValid() {
		// The host always sends an address for these ops; without one
		// there is nothing to vouch for.
		return policy.Deny("special-ranges: " + string(r.Op) + " without an address")
	}
	if (len(s.except) > 0 || len(s.scoped) > 0) && s.excepted(r, a) {
		return s.verdict(policy.Abstain())
	}
	// A NAT64, 6to4 or Teredo address is only as special as the IPv4
	// addresses it carries (Request.EmbeddedIPv4; Teredo has two, the
	// client and the server): the prefixes themselves sit in blocks
	// (outside 2000::/3, 2001::/23) that would otherwise deny all NAT64
	// traffic.
	if len(r.EmbeddedIPv4) > 0 && translator(a) {
		for _, v4 := range r.EmbeddedIPv4 {
			if s.excepted(r, v4) {
				continue
			}
			if c, why := special.Explain(v4); c != 0 {
				return s.verdict(policy.Deny(reason(a, v4, why)))
			}
		}
		return s.verdict(policy.Abstain())
	}
	if c, why := special.Explain(a); c != 0 {
		return s.verdict(policy.Deny(reason(a, netip.Addr{}, why)))
	}
	return s.verdict(policy.Abstain())
}

// reasonBuf is reused to build deny reasons with one allocation (the
// string); decide never runs concurrently inside a plugin, and natively
// the mutex keeps tests that run in parallel safe.
var (
	reasonMu  sync.Mutex
	reasonBuf []byte
)

// reason returns "special-ranges: A is WHY", or with an embedded address
// "special-ranges: A embeds V4, which is WHY".
func reason(a, v4 netip.Addr, why string) string {
	reasonMu.Lock()
	defer reasonMu.Unlock()
	b := append(reasonBuf[:0], "special-ranges: "...)
	b = a.AppendTo(b)
	if v4.IsValid() {
		b = append(b, " embeds "...)
		b = v4.AppendTo(b)
		b = append(b, ", which is "...)
	} else {
		b = append(b, " is "...)
	}
	b = append(b, why...)
	reasonBuf = b
	return string(b)
}

// translators are the IPv6 blocks whose addresses reach an embedded IPv4
// address through a translator or tunnel. IPv4-compatible ::a.b.c.d is not
// among them: it is deprecated, not routed, and stays denied as reserved.
var translators = []netip.Prefix{
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64 well-known prefix (RFC 6052)
	netip.MustParsePrefix("64:ff9b:1::/48"), // NAT64 local use (RFC 8215)
	netip.MustParsePrefix("2002::/16"),      // 6to4 (RFC 3056)
	netip.MustParsePrefix("2001::/32"),      // Teredo (RFC 4380)
}

// translator reports whether a is in one of the translators blocks.
func translator(a netip.Addr) bool {
	if !a.Is6() {
		return false
	}
	for _, p := range translators {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (s *specialRanges) verdict(v policy.Verdict) policy.Verdict {
	// The verdict depends only on the op, the address and (with scoped
	// exceptions that name ports) the port, all part of the host's cache
	// key, so it may be reused.
	v.CacheTTLMs = s.ttlMs
	return v
}

// loader builds the plugin from its config, once (the host fixes the
// config at instantiation).
type loader func() (*specialRanges, error)

func loaderOf(read func() (config, error)) loader {
	return sync.OnceValues(func() (*specialRanges, error) {
		c, err := read()
		if err != nil {
			// Report the values' problems too (one per line), so that a
			// config is fixed in one pass.
			if _, err2 := newSpecialRanges(c); err2 != nil {
				err = errors.Join(err, err2)
			}
			return nil, err
		}
		return newSpecialRanges(c)
	})
}

// load is the wasm plugin's: its config comes from the host.
var load = loaderOf(readConfig)

// readConfig reads the config with policy.ConfigMap rather than
// policy.Config: without encoding/json the plugin is ~1 MB smaller.
func readConfig() (config, error) { return configFrom(policy.LoadConfigMap()) }

func configFrom(m *policy.ConfigMap, err error) (config, error) {
	if err != nil {
		return config{}, err
	}
	var c config
	var err1, err2 error
	c.Except, _, err1 = m.Strings("except")
	c.CacheTTL, _, err2 = m.String("cache_ttl")
	return c, errors.Join(err1, err2, m.Unused())
}

// Describe is the plugin's describe output (docs/plugins.md#4-the-wire-format).
func Describe() policy.Description { return load.describe() }

func (l loader) describe() policy.Description {
	// Verdicts depend on the address alone, never on the port, unless a
	// scoped exception names ports: then connects and sends depend on it.
	if s, err := l(); err == nil && s.portScoped {
		return policy.Description{Name: "special-ranges", Version: "1", Ops: ops, IgnoresPort: []policy.Op{policy.OpDNSAnswer}}
	}
	return policy.Description{Name: "special-ranges", Version: "1", Ops: ops, IgnoresPort: ops}
}

// Validate checks the config (the validate export).
func Validate() error { return load.validate() }

func (l loader) validate() error {
	_, err := l()
	return err
}

// Decide is the plugin's decision on one request. It passes the request
// on by pointer (inside wasm each copy of a Request is a call out of the
// plugin's code) and, once the config is loaded, calls straight into the
// plugin: each call on the way is cold code in a running guest.
func Decide(r policy.Request) policy.Verdict {
	if s := loaded.Load(); s != nil {
		return s.decide(&r)
	}
	s, err := load()
	if err != nil {
		return load.decide(&r) // the deny naming the config error
	}
	loaded.Store(s)
	return s.decide(&r)
}

// loaded is the package's plugin once load has built it.
var loaded atomic.Pointer[specialRanges]

func (l loader) decide(r *policy.Request) policy.Verdict {
	s, err := l()
	if err != nil {
		return policy.Deny("special-ranges: bad config: " + err.Error())
	}
	return s.decide(r)
}

// Register makes this plugin the module's describe, validate and decide
// (sdk/policy), as its package main and the built-in bundle do.
func Register() {
	policy.DescribeFunc(Describe)
	policy.Validate(Validate)
	policy.Handle(Decide)
}
