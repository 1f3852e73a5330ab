package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// A plugin registers its parts from init() (or package-level variable
// initialisers): a plugin built with -buildmode=c-shared is a WASI reactor,
// so its package init runs when the host initialises the module, but main()
// never runs.

var (
	handler      func(Request) Verdict
	description  func() Description
	validator    func() error
	errNoHandler = errors.New("policy: no handler registered (call policy.Handle from init)")
)

// Handle registers the function that decides every request. It must be
// called from init(). The request is canonical when the handler sees it (see
// Invoke); a panic in the handler becomes a deny, not a crash. Treat the
// request's Names and Labels as read-only: inside a plugin they may be shared
// with earlier requests (allocating them afresh costs microseconds in wasm).
func Handle(h func(Request) Verdict) { handler = h }

// Description is what a plugin tells the host about itself through its
// describe export (docs/plugins.md#4-the-wire-format).
type Description struct {
	// Name and Version identify the plugin in logs.
	Name    string
	Version string
	// Ops lists the operations the plugin wants to see. The host never sends
	// it others. Empty means all operations.
	Ops []Op
	// Stateful asks the host to keep exactly one instance of the plugin per
	// chain (no pool), because the plugin keeps state across calls (for
	// example a rate limiter). Without it, state is per pooled instance.
	Stateful bool
	// IgnoresPort lists the operations whose verdicts never depend on the
	// request's Port. The host then leaves the port out of the verdict
	// cache key of this plugin for those operations, so that one cached
	// verdict serves, for example, every tcp.accept from a peer address,
	// whatever ephemeral port the peer connects from (docs/plugins.md §4,
	// "The verdict cache"). Declare an op only if no verdict for it ever
	// reads Port: the host will then reuse a verdict made for one port for
	// another.
	// Empty (the default) means the port is part of every key.
	IgnoresPort []Op
}

// Describe registers a static description, returned by the describe export.
func Describe(d Description) { description = func() Description { return d } }

// DescribeFunc registers a function computing the description when the host
// asks, so that it can depend on the plugin's config (Config is available).
func DescribeFunc(f func() Description) { description = f }

// Validate registers a function that checks the plugin's config. The host
// calls it through the validate export when it loads the plugin, so a bad
// config fails `wasmgate check` and `wasmgate run` before any guest starts.
func Validate(f func() error) { validator = f }

// Config decodes the plugin's configuration (the manifest's
// [plugins.config] table, which the host hands over as JSON under the Extism
// config key "config") into v, which must be a pointer. Unknown keys are an
// error, so that a typo in the manifest is reported instead of ignored. When
// the manifest has no config table, v is left unchanged and Config returns
// nil.
func Config(v any) error {
	raw := configJSON()
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &ConfigError{Err: err}
	}
	if dec.More() {
		return &ConfigError{Err: errors.New("trailing data after JSON value")}
	}
	return nil
}

// ConfigValue returns the Extism config value of key as the host set it,
// and whether it is set. The manifest's [plugins.config] table arrives
// under "config" (read it with Config or LoadConfigMap); hosts may set
// other keys, such as wasmgate's "wasmgate.builtin", which selects one of
// the built-in plugins in the module that bundles them.
func ConfigValue(key string) (string, bool) {
	if v, ok := testConfigValue(key); ok {
		return v, true
	}
	return hostConfigValue(key)
}

// ConfigError is returned by Config when the config does not decode.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return "config: " + e.Err.Error() }

// Unwrap returns the decoding error.
func (e *ConfigError) Unwrap() error { return e.Err }

// panicText renders a recovered panic value without fmt, which would add
// ~0.5 MB to every plugin.
func panicText(p any) string {
	switch v := p.(type) {
	case string:
		return v
	case error:
		return v.Error()
	case interface{ String() string }:
		return v.String()
	}
	return "(non-string panic value)"
}

// LogLevel is the severity of a message sent to the host with Log. The values
// are Extism's.
type LogLevel int32

// Log levels, lowest first.
const (
	LogTrace LogLevel = iota
	LogDebug
	LogInfo
	LogWarn
	LogError
)

// Canonical returns r in the canonical form the host promises
// (docs/policy.md#canonical): addresses unmapped and without zone, names
// lower-case without a
// trailing dot. Invoke applies it before the handler runs, so a plugin fed by
// a sloppier host still matches rules the way it was tested.
func Canonical(r Request) Request {
	canonicalize(&r, false)
	return r
}

// canonicalize is Canonical on r itself, skipping the names when the caller
// knows they are canonical already (lists the decide export's interner canonicalised when
// it first saw them). IPv4 addresses are canonical by construction.
//
// It works in place: inside a plugin each copy of a Request is a call out
// to the host's memmove.
func canonicalize(r *Request, namesCanonical bool) {
	if r.Addr.Is6() {
		r.Addr = r.Addr.WithZone("").Unmap()
	}
	setEmbedded(r)
	if r.Local.IsValid() {
		r.Local = netip.AddrPortFrom(r.Local.Addr().WithZone("").Unmap(), r.Local.Port())
	}
	if r.Name != "" {
		r.Name = CanonicalName(r.Name)
	}
	if namesCanonical {
		return
	}
	copied := false
	for i, n := range r.Names {
		if c := CanonicalName(n); c != n {
			if !copied {
				// Never modify the caller's slice.
				r.Names = append([]string(nil), r.Names...)
				copied = true
			}
			r.Names[i] = c
		}
	}
}

// CanonicalName lower-cases ASCII letters and drops one trailing dot. It
// does not validate the name.
func CanonicalName(name string) string {
	n := len(name)
	if n > 0 && name[n-1] == '.' {
		name = name[:n-1]
	}
	if hasUpper(name) {
		return strings.ToLower(name)
	}
	return name
}

// hasUpper reports whether s contains an ASCII capital letter, testing 8
// bytes per step (in a plugin every loop iteration costs a termination
// check).
func hasUpper(s string) bool {
	i := 0
	for ; len(s)-i >= 8; i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		// The classic "has byte between 0x40 and 0x5b" test; bytes >= 0x80
		// never count.
		const l, h = 0x0101010101010101, 0x8080808080808080
		low := x &^ h
		if (l*(127+0x5b)-low)&^x&(low+l*(127-0x40))&h != 0 {
			return true
		}
	}
	for ; i < len(s); i++ {
		if s[i]-'A' < 26 {
			return true
		}
	}
	return false
}

// Invoke runs the registered handler on req as the decide export does:
// the request is made canonical, a panic becomes a deny, and a verdict whose
// action is not allow/deny/abstain becomes a deny. Use it to unit-test a
// plugin natively.
func Invoke(req Request) Verdict { return invoke(handler, &req, false) }

// needsCanonical reports whether canonicalize would change r: not for what
// the wasmgate host sends, an IPv4 address (IPv6 ones need their embedded
// IPv4 derived), no Name, and names the parse found canonical.
func needsCanonical(r *Request, namesCanonical bool) bool {
	return r.Addr.Is6() || r.Local.Addr().Is6() || r.Name != "" || !namesCanonical && len(r.Names) > 0 || len(r.EmbeddedIPv4) > 0
}

func invoke(handler func(Request) Verdict, req *Request, namesCanonical bool) (v Verdict) {
	if handler == nil {
		return Deny(errNoHandler.Error())
	}
	defer func() {
		if p := recover(); p != nil {
			v = Deny("plugin panicked: " + panicText(p))
		}
	}()
	// Skipping the call when it would change nothing saves a cold wasm
	// function per decision (BENCHMARKS.md, "Decision cost in a running guest").
	if needsCanonical(req, namesCanonical) {
		canonicalize(req, namesCanonical)
	}
	v = handler(*req)
	// eqStr: the handler returns the constants, which compare by
	// pointer; a string switch would loop over bytes inside wasm.
	if a := string(v.Verdict); !eqStr(a, string(ActionAllow)) && !eqStr(a, string(ActionAbstain)) && !eqStr(a, string(ActionDeny)) {
		v = Deny("plugin returned invalid verdict " + strconv.Quote(string(v.Verdict)))
	}
	if v.CacheTTLMs < 0 {
		v.CacheTTLMs = 0
	}
	return v
}

// InvokeJSON is the whole decide export on bytes: it parses a JSON request,
// runs Invoke and appends the JSON verdict to out. The error is for input
// that is not a request.
func InvokeJSON(input, out []byte) ([]byte, error) {
	return invokeJSON(input, out, nil)
}

func invokeJSON(input, out []byte, in *interner) ([]byte, error) {
	var req Request
	if err := parseRequest(input, &req, in); err != nil {
		return out, err
	}
	return AppendVerdictJSON(out, invoke(handler, &req, in != nil && in.namesCanonical)), nil
}

// DescribeJSON returns the output of the describe export:
// {"name":...,"version":...,"ops":[...],"stateful":true,"ignores_port":[...]}.
// Members are omitted when empty; no "ops" means all operations, no
// "ignores_port" means every verdict may depend on the port.
func DescribeJSON() []byte { return describeJSON(description) }

func describeJSON(description func() Description) []byte {
	var d Description
	if description != nil {
		d = description()
	}
	b := []byte(`{`)
	sep := ""
	if d.Name != "" {
		b = appendString(append(b, `"name":`...), d.Name)
		sep = ","
	}
	if d.Version != "" {
		b = appendString(append(append(b, sep...), `"version":`...), d.Version)
		sep = ","
	}
	if len(d.Ops) > 0 {
		b = appendOps(append(append(b, sep...), `"ops":`...), d.Ops)
		sep = ","
	}
	if d.Stateful {
		b = append(append(b, sep...), `"stateful":true`...)
		sep = ","
	}
	if len(d.IgnoresPort) > 0 {
		b = appendOps(append(append(b, sep...), `"ignores_port":`...), d.IgnoresPort)
	}
	return append(b, '}')
}

func appendOps(b []byte, ops []Op) []byte {
	b = append(b, '[')
	for i, op := range ops {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, string(op))
	}
	return append(b, ']')
}

// ValidateJSON returns the output of the validate export: {} when the
// registered validator (if any) accepts the config, else {"error":"..."}.
func ValidateJSON() []byte { return validateJSON(validator) }

func validateJSON(validator func() error) (out []byte) {
	defer func() {
		if p := recover(); p != nil {
			out = appendString([]byte(`{"error":`), "validate panicked: "+panicText(p))
			out = append(out, '}')
		}
	}()
	if validator == nil {
		return []byte(`{}`)
	}
	if err := validator(); err != nil {
		return append(appendString([]byte(`{"error":`), err.Error()), '}')
	}
	return []byte(`{}`)
}

// setEmbedded makes r.EmbeddedIPv4 what r.Addr embeds, whatever the host
// sent (an older host sends nothing): the field is derived from Addr. It
// reuses the slice when it already holds the right addresses, and
// allocates nothing for addresses that embed none.
func setEmbedded(r *Request) {
	var buf [2]netip.Addr
	n := embeddedIPv4(r.Addr, &buf)
	if n == 0 {
		r.EmbeddedIPv4 = nil
		return
	}
	if !slices.Equal(r.EmbeddedIPv4, buf[:n]) {
		r.EmbeddedIPv4 = append([]netip.Addr(nil), buf[:n]...)
	}
}
