// Package ratelimit is the built-in wasmgate policy plugin that denies an
// operation when the guest has exceeded a limit on it (docs/plugins.md#6-the-built-in-plugins), and
// abstains otherwise.
//
// Config ([plugins.config] in the manifest):
//
//	limits = { "tcp.connect" = "10/1s", "dns.lookup" = "100/1m", "*" = "1000/1h" }
//
// Each key is an op (docs/policy.md#ops) or "*" (all ops together, one shared
// budget); each value is "N/INTERVAL": at most N operations in any window of
// INTERVAL (a Go duration like "1s", "1m30s", or just a unit: "10/s"). The
// window slides: the plugin remembers the times of the last N allowed
// operations, so the limit holds over every interval, not only aligned ones.
// A request is checked against its op's limit and "*"; it counts against
// them only if it is not denied.
//
// Limits are per guest (the request's guest field) and use the request's
// time_ms, because plugins see a fake clock; a request without time_ms is
// denied. The state lives in the plugin instance: the plugin describes
// itself as stateful so that the host keeps one instance for it. A host that
// pools instances anyway makes each limit per instance, and an instance
// replaced after a failure starts from zero.
//
// The plugin's package main is ./plugin (build: GOOS=wasip1 GOARCH=wasm go
// build -buildmode=c-shared ./plugins/ratelimit/plugin); wasmgate embeds it in
// the bundle of built-ins (package plugins/builtin).
package ratelimit

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

type config struct {
	Limits map[string]string
}

// maxCount bounds N: the window keeps N timestamps per guest and limit.
const maxCount = 100000

// limit is one configured limit.
type limit struct {
	key      string // op or "*"
	spec     string // as configured, for reasons
	n        int
	interval int64 // ms
	// The window of the last guest seen, so that a run of requests from
	// one guest skips the map (a map lookup hashes and probes in loops,
	// each iteration a termination check inside wasm). The SDK interns
	// guest names, so the comparison is usually a pointer comparison.
	lastGuest string
	lastWin   *window
}

// window is the sliding window of one limit for one guest: the times of the
// last (up to n) allowed operations in a ring.
type window struct {
	times []int64
	next  int // oldest entry once len(times) == n
}

// admits reports whether an operation at now fits in the window.
func (w *window) admits(l *limit, now int64) bool {
	return len(w.times) < l.n || now-w.times[w.next] >= l.interval
}

// add records an operation at now.
func (w *window) add(l *limit, now int64) {
	if len(w.times) < l.n {
		w.times = append(w.times, now)
		return
	}
	w.times[w.next] = now
	w.next = (w.next + 1) % l.n
}

type ratelimit struct {
	byOp   map[policy.Op]*limit
	opLim  [16]*limit // byOp indexed by policy.OpIndex
	all    *limit
	ops    []policy.Op
	state  map[stateKey]*window
	lastMs int64
}

type stateKey struct {
	guest string
	limit string
}

func parseLimit(key, spec string) (*limit, error) {
	bad := func(why string) error {
		return errors.New("limits." + strconv.Quote(key) + " = " + strconv.Quote(spec) + ": " + why)
	}
	if key != "*" && !policy.Op(key).Valid() {
		return nil, bad("unknown op; want one of " + opList() + " or \"*\"")
	}
	count, per, ok := strings.Cut(spec, "/")
	if !ok {
		return nil, bad("want N/INTERVAL, e.g. \"10/1s\"")
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 || n > maxCount {
		return nil, bad("N must be an integer from 1 to " + strconv.Itoa(maxCount))
	}
	d, err := time.ParseDuration(per)
	if err != nil {
		d, err = time.ParseDuration("1" + per)
	}
	if err != nil || d < time.Millisecond || d > 24*time.Hour {
		return nil, bad("INTERVAL must be a duration from 1ms to 24h, e.g. \"1s\", \"1m\" or \"s\"")
	}
	return &limit{key: key, spec: spec, n: n, interval: d.Milliseconds()}, nil
}

func opList() string {
	s := make([]string, len(policy.Ops))
	for i, op := range policy.Ops {
		s[i] = string(op)
	}
	return strings.Join(s, ", ")
}

func newRatelimit(c config) (*ratelimit, error) {
	if len(c.Limits) == 0 {
		return nil, errors.New(`ratelimit: no limits: set limits = { "tcp.connect" = "10/1s", ... } in [plugins.config]`)
	}
	r := &ratelimit{byOp: map[policy.Op]*limit{}, state: map[stateKey]*window{}}
	keys := make([]string, 0, len(c.Limits))
	for k := range c.Limits {
		keys = append(keys, k)
	}
	slices.Sort(keys) // errors in a stable order
	var errs []error
	for _, k := range keys {
		l, err := parseLimit(k, c.Limits[k])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if k == "*" {
			r.all = l
		} else {
			r.byOp[policy.Op(k)] = l
		}
	}
	if errs != nil {
		return nil, errors.Join(errs...)
	}
	if r.all == nil {
		for _, op := range policy.Ops {
			if r.byOp[op] != nil {
				r.ops = append(r.ops, op)
			}
		}
	} // else: every op counts, r.ops stays empty = all ops
	for op, l := range r.byOp {
		r.opLim[policy.OpIndex(op)] = l
	}
	return r, nil
}

func (r *ratelimit) window(guest string, l *limit) *window {
	if l.lastWin != nil && guest == l.lastGuest {
		return l.lastWin
	}
	k := stateKey{guest, l.key}
	w := r.state[k]
	if w == nil {
		w = &window{}
		r.state[k] = w
	}
	l.lastGuest, l.lastWin = guest, w
	return w
}

func (r *ratelimit) decide(req *policy.Request) policy.Verdict {
	var lop *limit
	if i := policy.OpIndex(req.Op); i >= 0 {
		lop = r.opLim[i]
	}
	lall := r.all
	if lop == nil && lall == nil {
		return policy.Abstain()
	}
	if req.TimeMs <= 0 {
		return policy.Deny("ratelimit: request has no time_ms, cannot count")
	}
	// A clock that steps back must not refill the windows.
	now := max(req.TimeMs, r.lastMs)
	r.lastMs = now
	var wop, wall *window
	if lop != nil {
		if wop = r.window(req.Guest, lop); !wop.admits(lop, now) {
			return r.deny(req, lop)
		}
	}
	if lall != nil {
		if wall = r.window(req.Guest, lall); !wall.admits(lall, now) {
			return r.deny(req, lall)
		}
	}
	if wop != nil {
		wop.add(lop, now)
	}
	if wall != nil {
		wall.add(lall, now)
	}
	return policy.Abstain()
}

func (r *ratelimit) deny(req *policy.Request, l *limit) policy.Verdict {
	what := string(req.Op)
	if l.key == "*" {
		what = "operations"
	}
	return policy.Deny("ratelimit: guest " + strconv.Quote(req.Guest) + " exceeded " + what + " limit " + l.spec)
}

// loader builds the plugin from its config, once (the host fixes the
// config at instantiation).
type loader func() (*ratelimit, error)

func loaderOf(read func() (config, error)) loader {
	return sync.OnceValues(func() (*ratelimit, error) {
		c, err := read()
		if err != nil {
			// Report the values' problems too (one per line), so that a
			// config is fixed in one pass.
			if c.Limits != nil {
				if _, err2 := newRatelimit(c); err2 != nil {
					err = errors.Join(err, err2)
				}
			}
			return nil, err
		}
		return newRatelimit(c)
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
	var err1 error
	c.Limits, _, err1 = m.StringTable("limits")
	return c, errors.Join(err1, m.Unused())
}

// Describe is the plugin's describe output (docs/plugins.md#4-the-wire-format).
func Describe() policy.Description { return load.describe() }

func (l loader) describe() policy.Description {
	d := policy.Description{Name: "ratelimit", Version: "1", Stateful: true}
	if r, err := l(); err == nil {
		d.Ops = r.ops
		// Counting never looks at the port (no verdict is cacheable
		// anyway: they depend on time and state).
		d.IgnoresPort = r.ops
		if len(r.ops) == 0 {
			d.IgnoresPort = policy.Ops
		}
	}
	return d
}

// Validate checks the config (the validate export).
func Validate() error { return load.validate() }

func (l loader) validate() error {
	_, err := l()
	return err
}

// Decide is the plugin's decision on one request. It passes the request
// on by pointer: inside wasm each copy of a Request is a call out of the
// plugin's code.
func Decide(req policy.Request) policy.Verdict { return load.decide(&req) }

func (l loader) decide(req *policy.Request) policy.Verdict {
	r, err := l()
	if err != nil {
		return policy.Deny("ratelimit: bad config: " + err.Error())
	}
	return r.decide(req)
}

// Register makes this plugin the module's describe, validate and decide
// (sdk/policy), as its package main and the built-in bundle do.
func Register() {
	policy.DescribeFunc(Describe)
	policy.Validate(Validate)
	policy.Handle(Decide)
}
