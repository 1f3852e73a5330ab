package metrics

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wasmgate/wasmgate/network"
)

// Throttled is how long a guest's sending (Out) and receiving (In) were
// held back by send_rate and recv_rate (network.QuotaCounters).
type Throttled struct {
	In, Out time.Duration
}

// registerQuota adds wasmgate_quota_refusals_total and
// wasmgate_throttled_seconds_total (docs/metrics.md).
func (m *Metrics) registerQuota() {
	m.quotaRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmgate_quota_refusals_total",
		Help: "Operations a [limits] quota refused, by quota: connect_rate, accept_rate, dns_rate, send_total, recv_total, max_conns_out, max_conns_in.",
	}, []string{"quota"})
	// Each refusing quota has its series from the start.
	for _, q := range network.QuotaNames {
		m.quotaRefusals.WithLabelValues(q)
	}
	m.reg.MustRegister(m.quotaRefusals, &throttleCollector{m: m,
		desc: prometheus.NewDesc("wasmgate_throttled_seconds_total",
			"Time the guests' sending (out) or receiving (in) was held back by send_rate or recv_rate, waiting for tokens.",
			[]string{"direction"}, nil)})
}

// QuotaRefusal counts one operation refused by the named quota.
func (m *Metrics) QuotaRefusal(quota string) { m.quotaRefusals.WithLabelValues(quota).Inc() }

// WatchThrottled adds a guest's throttled time (network.Default's
// QuotaCounters, converted) to wasmgate_throttled_seconds_total, read at
// each scrape.
func (m *Metrics) WatchThrottled(f func() Throttled) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.throttled = append(m.throttled, f)
}

type throttleCollector struct {
	m    *Metrics
	desc *prometheus.Desc
}

func (c *throttleCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *throttleCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	fs := slices.Clone(c.m.throttled)
	c.m.mu.Unlock()
	var t Throttled
	for _, f := range fs {
		g := f()
		t.In += g.In
		t.Out += g.Out
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, t.In.Seconds(), "in")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, t.Out.Seconds(), "out")
}
