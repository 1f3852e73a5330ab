// Package metrics exports what wasmgate's policy does as Prometheus
// metrics: decisions by op, verdict and deciding plugin, how long they
// took, verdict-cache hits, plugin failures by kind, the guest's open
// sockets, bytes and DNS queries, policy reloads and revoked sockets, and
// the Go runtime and process of the host. `wasmgate run
// --metrics ADDR` serves them; an embedder passes a *Metrics to
// plugins.Options and serves Handler itself. The metric names are listed
// in docs/metrics.md.
//
// Recording a decision costs a few atomic adds: the labelled series a
// chain uses are looked up once (DecisionSeries) and kept.
package metrics

import (
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one registry of wasmgate metrics. The zero value is not
// usable; call New.
type Metrics struct {
	reg          *prometheus.Registry
	decisions    *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	cacheHits    prometheus.Counter
	pluginErrors *prometheus.CounterVec
	reloads      *prometheus.CounterVec
	revoked      prometheus.Counter
	divergences  prometheus.Counter

	// quota.go
	quotaRefusals *prometheus.CounterVec

	mu        sync.Mutex
	sockets   []func() int
	counters  []func() GuestCounters
	throttled []func() Throttled
}

// GuestCounters are one guest's running totals, as
// network.Default.Counters returns them (the same fields, so one converts
// to the other): payload bytes received and sent by its sockets, and its
// DNS queries by outcome.
type GuestCounters struct {
	BytesIn, BytesOut                uint64
	DNSAllowed, DNSDenied, DNSFailed uint64
}

// New returns a registry with wasmgate's metrics and the Go runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmgate_decisions_total",
			Help: "Policy decisions, by op, verdict (allow, deny, would_deny) and deciding plugin (\"\" for the manifest default or a decision made before any plugin).",
		}, []string{"op", "verdict", "plugin"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wasmgate_decision_duration_seconds",
			Help:    "Time to decide one operation through the plugin chain when a plugin ran (cache hits are not timed), by deciding plugin.",
			Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2, 0.1, 1},
		}, []string{"plugin"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasmgate_decision_cache_hits_total",
			Help: "Decisions answered entirely from the verdict cache (no plugin ran).",
		}),
		pluginErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmgate_plugin_errors_total",
			Help: "Plugin calls that failed (and so denied), by plugin and kind: timeout, trap, malformed (output that is not a verdict), rc (a non-zero return), other.",
		}, []string{"plugin", "kind"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmgate_policy_reloads_total",
			Help: "Policy reloads (SIGHUP, --watch), by result: ok (the new policy is in force) or error (the old one stays).",
		}, []string{"result"}),
		revoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasmgate_revoked_sockets_total",
			Help: "Sockets (connections, listeners, connected UDP sockets) closed because a reloaded policy denied them.",
		}),
		divergences: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasmgate_shadow_divergences_total",
			Help: "Decisions where the --shadow candidate policy's verdict (allowed or not) differs from the enforced one.",
		}),
	}
	// Both results exist from the start, so that rate() and alerts on
	// errors work before the first failure.
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("error")
	m.reg.MustRegister(m.decisions, m.duration, m.cacheHits, m.pluginErrors, m.reloads, m.revoked, m.divergences,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wasmgate_open_sockets",
			Help: "Sockets the guests watched by this registry hold open.",
		}, m.openSockets),
		&guestCollector{m: m,
			bytes: prometheus.NewDesc("wasmgate_bytes_total",
				"Payload bytes of the guests' sockets, by direction: in (received into the guest), out (sent by it); a splice counts both.",
				[]string{"direction"}, nil),
			dns: prometheus.NewDesc("wasmgate_dns_queries_total",
				"Name lookups of the guests, by verdict: allow (answered), deny (the lookup, a CNAME, or every answer denied), error (invalid name, resolver failure, no such name).",
				[]string{"verdict"}, nil),
		},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registerQuota()
	return m
}

// Registry is the registry the metrics are in, for an embedder that adds
// its own or serves them its own way.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// WatchSockets adds a guest's count of open sockets (for example
// network.Default.OpenSockets) to wasmgate_open_sockets.
func (m *Metrics) WatchSockets(count func() int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sockets = append(m.sockets, count)
}

// WatchCounters adds a guest's running totals (network.Default.Counters,
// converted) to wasmgate_bytes_total and wasmgate_dns_queries_total. They
// are read at each scrape: the guest's own updates are plain atomic
// additions, with nothing of Prometheus on its path.
func (m *Metrics) WatchCounters(f func() GuestCounters) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counters = append(m.counters, f)
}

// guestCollector sums the watched guests' counters at each scrape.
type guestCollector struct {
	m          *Metrics
	bytes, dns *prometheus.Desc
}

func (c *guestCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.bytes
	ch <- c.dns
}

func (c *guestCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	fs := slices.Clone(c.m.counters)
	c.m.mu.Unlock()
	var t GuestCounters
	for _, f := range fs {
		g := f()
		t.BytesIn += g.BytesIn
		t.BytesOut += g.BytesOut
		t.DNSAllowed += g.DNSAllowed
		t.DNSDenied += g.DNSDenied
		t.DNSFailed += g.DNSFailed
	}
	counter := func(d *prometheus.Desc, v uint64, label string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label)
	}
	counter(c.bytes, t.BytesIn, "in")
	counter(c.bytes, t.BytesOut, "out")
	counter(c.dns, t.DNSAllowed, "allow")
	counter(c.dns, t.DNSDenied, "deny")
	counter(c.dns, t.DNSFailed, "error")
}

func (m *Metrics) openSockets() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, f := range m.sockets {
		n += f()
	}
	return float64(n)
}

// Reload counts one policy reload: ok true when the new policy is in
// force, false when it failed and the old one stays.
func (m *Metrics) Reload(ok bool) {
	r := "error"
	if ok {
		r = "ok"
	}
	m.reloads.WithLabelValues(r).Inc()
}

// Revoked counts one socket revoked after a reload.
func (m *Metrics) Revoked() { m.revoked.Inc() }

// ShadowDivergence counts one decision on which the shadow policy
// disagreed with the enforced one.
func (m *Metrics) ShadowDivergence() { m.divergences.Inc() }

// Verdicts, as wasmgate_decisions_total labels them.
const (
	Allow     = iota // "allow"
	Deny             // "deny"
	WouldDeny        // "would_deny": report mode let it through
	verdicts
)

var verdictNames = [verdicts]string{"allow", "deny", "would_deny"}

// Series are the labelled series of one decider (a plugin chain), looked
// up on first use and kept in a table indexed by plugin, op and verdict,
// so that recording a decision costs no hashing, no lock and no
// allocation. Its methods are safe for concurrent use.
type Series struct {
	m         *Metrics
	plugins   []string // index 0: "" (no plugin); i+1: plugin i
	ops       []string // index len(ops) is "unknown"
	decisions []atomic.Pointer[counter]
	durations []prometheus.Observer // by plugin index + 1
	errors    sync.Map              // errorKey -> prometheus.Counter
}

type counter struct{ prometheus.Counter }

type errorKey struct {
	plugin int
	kind   string
}

// DecisionSeries returns the series of a chain of the named plugins that
// decides the named ops (decisions are recorded by index into both).
func (m *Metrics) DecisionSeries(plugins, ops []string) *Series {
	s := &Series{m: m, plugins: append([]string{""}, plugins...), ops: append(slices.Clone(ops), "unknown")}
	s.decisions = make([]atomic.Pointer[counter], len(s.plugins)*len(s.ops)*verdicts)
	s.durations = make([]prometheus.Observer, len(s.plugins))
	for i, p := range s.plugins {
		s.durations[i] = m.duration.WithLabelValues(p)
	}
	return s
}

// Decision records one decision: the op's index (-1 or out of range: an
// unknown op), its verdict (Allow, Deny, WouldDeny), the deciding
// plugin's index (-1: none), whether the cache answered it, and how long
// it took (d < 0: not timed, as for cache hits).
func (s *Series) Decision(op, verdict, plugin int, cached bool, d time.Duration) {
	if op < 0 || op >= len(s.ops)-1 {
		op = len(s.ops) - 1
	}
	i := ((plugin+1)*len(s.ops)+op)*verdicts + verdict
	c := s.decisions[i].Load()
	if c == nil {
		c = &counter{s.m.decisions.WithLabelValues(s.ops[op], verdictNames[verdict], s.plugins[plugin+1])}
		s.decisions[i].Store(c) // a racing store holds the same series
	}
	c.Inc()
	if d >= 0 {
		s.durations[plugin+1].Observe(d.Seconds())
	}
	if cached {
		s.m.cacheHits.Inc()
	}
}

// PluginError records a failed call of plugin i of the chain.
func (s *Series) PluginError(plugin int, kind string) {
	k := errorKey{plugin + 1, kind}
	c, ok := s.errors.Load(k)
	if !ok {
		c, _ = s.errors.LoadOrStore(k, s.m.pluginErrors.WithLabelValues(s.plugins[plugin+1], kind))
	}
	c.(prometheus.Counter).Inc()
}
