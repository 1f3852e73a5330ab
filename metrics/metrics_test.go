package metrics

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "wasmgate_") {
			if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b.String()
}

// Decisions land on the series of their op, verdict and plugin; unknown
// ops and the no-plugin case have their own labels; cache hits are
// counted but not timed; plugin errors by kind; open sockets add up.
func TestSeries(t *testing.T) {
	m := New()
	s := m.DecisionSeries([]string{"egress", "ranges"}, []string{"dns.lookup", "tcp.connect"})
	s.Decision(1, Allow, 0, false, 3*time.Microsecond)
	s.Decision(1, Allow, 0, true, -1)
	s.Decision(1, Deny, 1, false, time.Millisecond)
	s.Decision(0, WouldDeny, -1, false, time.Microsecond)
	s.Decision(-1, Deny, -1, false, -1)
	s.Decision(7, Deny, -1, false, -1)
	s.PluginError(1, "timeout")
	s.PluginError(1, "timeout")
	m.WatchSockets(func() int { return 2 })
	m.WatchSockets(func() int { return 3 })
	m.WatchCounters(func() GuestCounters {
		return GuestCounters{BytesIn: 10, BytesOut: 20, DNSAllowed: 1, DNSDenied: 2, DNSFailed: 3}
	})
	m.WatchCounters(func() GuestCounters { return GuestCounters{BytesIn: 1, DNSDenied: 1} })
	m.QuotaRefusal("connect_rate")
	m.QuotaRefusal("connect_rate")
	m.WatchThrottled(func() Throttled { return Throttled{In: 250 * time.Millisecond, Out: 2 * time.Second} })
	m.WatchThrottled(func() Throttled { return Throttled{Out: time.Second} })
	text := scrape(t, m)
	for _, want := range []string{
		`wasmgate_decisions_total{op="tcp.connect",plugin="egress",verdict="allow"} 2`,
		`wasmgate_decisions_total{op="tcp.connect",plugin="ranges",verdict="deny"} 1`,
		`wasmgate_decisions_total{op="dns.lookup",plugin="",verdict="would_deny"} 1`,
		`wasmgate_decisions_total{op="unknown",plugin="",verdict="deny"} 2`,
		`wasmgate_decision_duration_seconds_count{plugin="egress"} 1`,
		`wasmgate_decision_duration_seconds_count{plugin=""} 1`,
		`wasmgate_decision_cache_hits_total 1`,
		`wasmgate_plugin_errors_total{kind="timeout",plugin="ranges"} 2`,
		`wasmgate_open_sockets 5`,
		`wasmgate_bytes_total{direction="in"} 11`,
		`wasmgate_bytes_total{direction="out"} 20`,
		`wasmgate_dns_queries_total{verdict="allow"} 1`,
		`wasmgate_dns_queries_total{verdict="deny"} 3`,
		`wasmgate_dns_queries_total{verdict="error"} 3`,
		`wasmgate_policy_reloads_total{result="error"} 0`,
		`wasmgate_revoked_sockets_total 0`,
		`wasmgate_quota_refusals_total{quota="connect_rate"} 2`,
		`wasmgate_quota_refusals_total{quota="send_total"} 0`,
		`wasmgate_throttled_seconds_total{direction="in"} 0.25`,
		`wasmgate_throttled_seconds_total{direction="out"} 3`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("lacks %q:\n%s", want, text)
		}
	}
}

// BenchmarkDecision is what recording one decision costs a chain: timed
// (a plugin ran) and untimed (a cache hit).
func BenchmarkDecision(b *testing.B) {
	s := New().DecisionSeries([]string{"egress"}, []string{"dns.lookup", "tcp.connect"})
	b.Run("timed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Decision(1, Allow, 0, false, 3*time.Microsecond)
		}
	})
	b.Run("cachehit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Decision(1, Allow, 0, true, -1)
		}
	})
}
