package plugins

import (
	"context"
	"fmt"
	"log/slog"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmgate/wasmgate/metrics"
	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// Chain is the manifest's plugins as one network.Policy (docs/policy.md#chain):
// plugins run in manifest order, any deny wins and stops the chain,
// otherwise any allow allows, otherwise the manifest default decides. A
// plugin that fails in any way denies, with a reason naming it. Plugins and
// whole manifests in report mode are evaluated and logged as would_deny but
// never deny. Every decision gives one audit record.
//
// A Chain is safe for concurrent use.
type Chain struct {
	plugins []*plugin
	def     policy.Action
	report  bool
	cache   *verdictCache
	audit   *slog.Logger
	metrics *metrics.Series // nil: no metrics
	index   map[string]int  // plugin name -> index, for metrics
	now     func() time.Time
	closed  atomic.Bool // its Policy was closed: every decision denies
}

// Outcome is a Decision with what the audit record says about it.
type Outcome struct {
	network.Decision
	// Audit is "allow", "deny" or "would_deny" (the operation is allowed
	// only because a report-mode plugin or manifest could not deny it).
	Audit string
	// Cached is true when no plugin ran: every verdict came from the cache.
	Cached bool
}

var _ network.Policy = (*Chain)(nil)
var _ network.Explainer = (*Chain)(nil)

// Decide implements network.Policy.
func (c *Chain) Decide(ctx context.Context, req *network.Request) (network.Verdict, error) {
	o := c.DecideOutcome(ctx, req)
	return o.Verdict, nil
}

// DecideExplain implements network.Explainer.
func (c *Chain) DecideExplain(ctx context.Context, req *network.Request) (network.Decision, error) {
	o := c.DecideOutcome(ctx, req)
	return o.Decision, nil
}

// encoding is one request in the wire formats plugins need, each made at
// most once per decision: JSON for the Extism decide export, binary for
// the wasmgate fast path.
type encoding struct {
	r                 *network.Request
	json, bin         []byte
	haveJSON, haveBin bool
	binOK             bool
}

var encPool = sync.Pool{New: func() any {
	return &encoding{json: make([]byte, 0, 512), bin: make([]byte, 0, 256)}
}}

func (e *encoding) reset(r *network.Request) {
	e.r, e.haveJSON, e.haveBin = r, false, false
}

func (e *encoding) JSON() []byte {
	if !e.haveJSON {
		e.json = policy.AppendRequestJSON(e.json[:0], e.r)
		e.haveJSON = true
	}
	return e.json
}

// Binary returns the binary encoding, ok false when the request has none
// (see policy.AppendRequestBinary).
func (e *encoding) Binary() ([]byte, bool) {
	if !e.haveBin {
		e.bin, e.binOK = policy.AppendRequestBinary(e.bin[:0], e.r)
		e.haveBin = true
	}
	return e.bin, e.binOK
}

// DecideOutcome decides req and says how (see Outcome). It never fails: any
// error is a deny.
func (c *Chain) DecideOutcome(ctx context.Context, req *network.Request) Outcome {
	// The clock is read only when needed: the audit record's duration, or
	// a request without time_ms (Default always sets it). The verdict
	// cache runs on time_ms, the clock plugins themselves see.
	var start time.Time
	if c.audit != nil {
		start = c.now()
	}
	r := req
	if r.TimeMs == 0 {
		if start.IsZero() {
			start = c.now()
		}
		cp := *req
		cp.TimeMs = start.UnixMilli()
		r = &cp
	}
	if r.Addr.Is6() {
		// EmbeddedIPv4 is derived from Addr (Default fills it; a request
		// from elsewhere, e.g. wasmgate decide, may not have it).
		if e := policy.EmbeddedIPv4(r.Addr); !slices.Equal(e, r.EmbeddedIPv4) {
			if r == req {
				cp := *req
				r = &cp
			}
			r.EmbeddedIPv4 = e
		}
	} else if len(r.EmbeddedIPv4) > 0 {
		if r == req {
			cp := *req
			r = &cp
		}
		r.EmbeddedIPv4 = nil
	}
	var (
		out       Outcome
		allowedBy = -1
		allowV    policy.Verdict
		denied    bool
		wouldBy   = -1
		wouldV    policy.Verdict
		ran       bool
		enc       *encoding
	)
	bit := opBit(r.Op)
	if c.closed.Load() {
		out.Verdict = policy.Deny("the policy was closed")
		out.Audit = "deny"
		c.record(ctx, r, &out, start, bit)
		return out
	}
	if bit == 0 {
		out.Verdict = policy.Deny(fmt.Sprintf("unknown op %q", r.Op))
		out.Audit = "deny"
		c.record(ctx, r, &out, start, bit)
		return out
	}
	var key cacheKey
	if c.cache != nil && len(c.plugins) > 0 {
		key = makeKey(r, bit)
	}
	for _, p := range c.plugins {
		if p.ops&bit == 0 {
			continue
		}
		var v policy.Verdict
		hit := false
		if c.cache != nil {
			key.plugin = p.index
			// A plugin that declared it never reads the port on this op
			// gets one entry for every port (a peer's ephemeral ports on
			// tcp.accept, udp.recv); any other plugin is keyed on it.
			key.port = r.Port
			if p.portFree&bit != 0 {
				key.port = 0
			}
			v, hit = c.cache.get(&key, r.TimeMs)
		}
		if !hit {
			if start.IsZero() && c.metrics != nil {
				// Metrics time the decisions a plugin runs for; a
				// cache hit is counted, not timed (a clock read costs
				// about as much as the hit).
				start = c.now()
			}
			ran = true
			if enc == nil {
				enc = encPool.Get().(*encoding)
				enc.reset(r)
			}
			var err error
			v, err = p.decide(ctx, enc)
			if err != nil {
				v = policy.Deny(fmt.Sprintf("plugin %q failed: %v", p.name, err))
				if c.metrics != nil {
					c.metrics.PluginError(p.index, failureKind(err))
				}
			} else {
				if v.Verdict != policy.ActionAllow && v.Verdict != policy.ActionAbstain {
					v.Verdict = policy.ActionDeny
				}
				if v.CacheTTLMs > 0 && c.cache != nil {
					c.cache.put(key, v, r.TimeMs)
				}
			}
		}
		switch v.Verdict {
		case policy.ActionAllow:
			if allowedBy < 0 {
				allowedBy, allowV = p.index, v
			}
			continue
		case policy.ActionAbstain:
			continue
		}
		// A deny.
		if p.report {
			if wouldBy < 0 {
				wouldBy, wouldV = p.index, v
			}
			continue
		}
		denied = true
		out.Plugin = p.name
		out.Verdict = policy.Verdict{Verdict: policy.ActionDeny, Reason: v.Reason}
		break
	}
	if enc != nil {
		enc.r = nil
		encPool.Put(enc)
	}
	switch {
	case denied:
	case allowedBy >= 0:
		out.Plugin = c.plugins[allowedBy].name
		out.Verdict = policy.Verdict{Verdict: policy.ActionAllow, Reason: allowV.Reason}
	case c.def == policy.ActionAllow:
		out.Verdict = policy.Allow("no plugin decided; manifest default is allow")
	default:
		out.Verdict = policy.Deny(fmt.Sprintf("no plugin allowed %s; manifest default is deny", r.Op))
	}
	out.Audit = string(out.Verdict.Verdict)
	if out.Verdict.Allowed() && wouldBy >= 0 {
		// Enforced, the report-mode plugin's deny would have won.
		out.Audit = "would_deny"
		out.Plugin = c.plugins[wouldBy].name
		out.Verdict.Reason = wouldV.Reason
	}
	if c.report && !out.Verdict.Allowed() {
		out.Audit = "would_deny"
		out.Verdict.Verdict = policy.ActionAllow
	}
	out.Cached = !ran
	c.record(ctx, r, &out, start, bit)
	return out
}

func (c *Chain) record(ctx context.Context, r *network.Request, o *Outcome, start time.Time, bit uint16) {
	if c.audit == nil && c.metrics == nil {
		return
	}
	d := time.Duration(-1)
	if !start.IsZero() {
		d = c.now().Sub(start)
	}
	if c.metrics != nil {
		i := -1
		if o.Plugin != "" {
			i = c.index[o.Plugin]
		}
		v := metrics.Allow
		switch o.Audit {
		case "deny":
			v = metrics.Deny
		case "would_deny":
			v = metrics.WouldDeny
		}
		c.metrics.Decision(bits.TrailingZeros16(bit), v, i, o.Cached, d) // bit 0: 16, unknown
	}
	if c.audit == nil {
		return
	}
	network.WriteAudit(ctx, c.audit, r, network.AuditEntry{
		Verdict: o.Audit, Plugin: o.Plugin, Reason: o.Verdict.Reason, Cached: o.Cached, Duration: d,
	})
}

// Plugins lists the plugin names in manifest order.
func (c *Chain) Plugins() []string {
	out := make([]string, len(c.plugins))
	for i, p := range c.plugins {
		out[i] = p.name
	}
	return out
}

// cacheKey identifies a plugin's verdict for an identical request
// (docs/plugins.md §4, "The verdict cache": same op, proto, addr, port,
// names, guest; also the dns name and the accept listener, which plugins
// may decide on). The port is 0 in the keys of a plugin that declared it
// ignores the port on the op (describe's "ignores_port"): keys are per
// plugin and per op, so such keys never meet keys made with the port. The
// op is kept as its bit and the proto as a byte so that only names and
// guest need string hashing.
type cacheKey struct {
	plugin int
	op     uint16
	proto  byte
	is4    bool
	port   uint16
	addr   [16]byte
	names  string
	guest  string
	local  netip.AddrPort // tcp.accept: a plugin may decide on the listener
}

func makeKey(r *network.Request, bit uint16) cacheKey {
	k := cacheKey{op: bit, port: r.Port, guest: r.Guest, addr: r.Addr.As16(), is4: r.Addr.Is4(), local: r.Local}
	switch r.Proto {
	case "":
	case "tcp":
		k.proto = 't'
	case "udp":
		k.proto = 'u'
	default:
		k.proto = '?'
	}
	switch len(r.Names) {
	case 0:
	case 1:
		k.names = r.Names[0]
	default:
		k.names = strings.Join(r.Names, "\x00")
	}
	// dns ops are keyed by the name too.
	if r.Name != "" {
		k.names = r.Name + "\x01" + k.names
	}
	return k
}

type cacheEntry struct {
	v       policy.Verdict
	expires int64 // Unix ms, the requests' time_ms clock
}

// verdictCache is a bounded map of verdicts that plugins marked cacheable.
type verdictCache struct {
	mu  sync.RWMutex
	m   map[cacheKey]cacheEntry
	max int
}

// maxCacheTTL bounds how long a plugin may ask us to trust an old verdict.
const maxCacheTTL = time.Hour

func newVerdictCache(max int) *verdictCache {
	return &verdictCache{m: make(map[cacheKey]cacheEntry), max: max}
}

func (c *verdictCache) get(k *cacheKey, nowMs int64) (policy.Verdict, bool) {
	c.mu.RLock()
	e, ok := c.m[*k]
	c.mu.RUnlock()
	if !ok || nowMs >= e.expires {
		return policy.Verdict{}, false
	}
	return e.v, true
}

func (c *verdictCache) put(k cacheKey, v policy.Verdict, nowMs int64) {
	ttl := v.CacheTTLMs
	if ttl > maxCacheTTL.Milliseconds() || ttl < 0 {
		ttl = maxCacheTTL.Milliseconds()
	}
	n := nowMs
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if n >= e.expires {
				delete(c.m, k)
			}
		}
		// Still full: drop an arbitrary quarter (map order is random).
		drop := len(c.m) - c.max*3/4
		for k := range c.m {
			if drop <= 0 {
				break
			}
			delete(c.m, k)
			drop--
		}
	}
	c.m[k] = cacheEntry{v: v, expires: n + ttl}
}

// failureKind names how a plugin call failed, for
// wasmgate_plugin_errors_total (docs/metrics.md).
func failureKind(err error) string {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "timeout"):
		return "timeout"
	case strings.HasPrefix(msg, "trap"):
		return "trap"
	case strings.HasPrefix(msg, "malformed"):
		return "malformed"
	case strings.HasPrefix(msg, "returned "):
		return "rc"
	}
	return "other"
}
