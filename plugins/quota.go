package plugins

// The [limits] quota keys (docs/manifest.md, [limits]; docs/sockets.md#quotas).
var quotaKeys = []string{
	"connect_rate", "connect_burst", "accept_rate", "accept_burst", "dns_rate", "dns_burst",
	"send_rate", "send_burst", "recv_rate", "recv_burst", "send_total", "recv_total",
	"max_conns_out", "max_conns_in",
}

// Bounds of the quota values.
const (
	maxOpRate  = 1e6     // connects, accepts or lookups per second
	maxOpBurst = 1 << 20 // ditto, at once
	maxBytes   = 1 << 40 // any byte rate, burst or total (1 TiB)
	maxConns   = 1 << 20 // concurrent connections, as max_sockets
)

// quotas parses the quota keys of [limits] t into m.Quotas.
func (v *validator) quotas(t map[string]any, m *Manifest) {
	q := &m.Quotas
	q.ConnectRate = v.opRate(t, "connect_rate")
	q.AcceptRate = v.opRate(t, "accept_rate")
	q.DNSRate = v.opRate(t, "dns_rate")
	q.ConnectBurst = v.count(t, "connect_burst", 1, maxOpBurst, "connect_rate", q.ConnectRate > 0)
	q.AcceptBurst = v.count(t, "accept_burst", 1, maxOpBurst, "accept_rate", q.AcceptRate > 0)
	q.DNSBurst = v.count(t, "dns_burst", 1, maxOpBurst, "dns_rate", q.DNSRate > 0)
	q.SendRate = v.bytes(t, "send_rate", 0, "", true)
	q.RecvRate = v.bytes(t, "recv_rate", 0, "", true)
	q.SendBurst = v.bytes(t, "send_burst", 1, "send_rate", q.SendRate > 0)
	q.RecvBurst = v.bytes(t, "recv_burst", 1, "recv_rate", q.RecvRate > 0)
	q.SendTotal = v.bytes(t, "send_total", 0, "", true)
	q.RecvTotal = v.bytes(t, "recv_total", 0, "", true)
	q.MaxConnsOut = v.count(t, "max_conns_out", 0, maxConns, "", true)
	q.MaxConnsIn = v.count(t, "max_conns_in", 0, maxConns, "", true)
}

// opRate parses a rate of operations per second: a number from 0
// (unlimited) to maxOpRate, fractions allowed ("0.5": one every 2 s).
func (v *validator) opRate(t map[string]any, key string) float64 {
	x, ok := t[key]
	if !ok {
		return 0
	}
	k := "limits." + key
	var f float64
	switch n := x.(type) {
	case int64:
		f = float64(n)
	case float64:
		f = n
	default:
		v.add(k, "must be a number (per second), not %s", tomlType(x))
		return 0
	}
	if !(f >= 0 && f <= maxOpRate) { // also NaN
		v.add(k, "must be between 0 (unlimited) and %d per second, not %v", int(maxOpRate), x)
		return 0
	}
	return f
}

// count parses an integer in [lo, hi]; a burst (needs != "") is only
// allowed beside its rate (have).
func (v *validator) count(t map[string]any, key string, lo, hi int64, needs string, have bool) int64 {
	x, ok := t[key]
	if !ok {
		return 0
	}
	k := "limits." + key
	n, ok := x.(int64)
	switch {
	case !ok:
		v.add(k, "must be an integer, not %s", tomlType(x))
	case n < lo || n > hi:
		if lo == 0 {
			v.add(k, "must be between 0 (unlimited) and %d, not %d", hi, n)
		} else {
			v.add(k, "must be between %d and %d, not %d", lo, hi, n)
		}
	case !have:
		v.add(k, "is a burst of %s, which is not set; set %s too, or remove %s", needs, needs, key)
	default:
		return n
	}
	return 0
}

// bytes parses a byte count: an integer or a size string ("10MiB"), from
// lo (0: unlimited) to maxBytes; a burst (needs != "") only beside its
// rate (have).
func (v *validator) bytes(t map[string]any, key string, lo int64, needs string, have bool) int64 {
	x, ok := t[key]
	if !ok {
		return 0
	}
	k := "limits." + key
	var n int64
	switch y := x.(type) {
	case int64:
		n = y
	case string:
		u, err := parseSize(y)
		if err != nil {
			v.add(k, "%q is not a size; %s", y, sizeHint)
			return 0
		}
		n = int64(u)
	default:
		v.add(k, "must be a size (\"10MiB\") or a number of bytes, not %s", tomlType(x))
		return 0
	}
	switch {
	case n < lo || n > maxBytes:
		if lo == 0 {
			v.add(k, "must be between 0 (unlimited) and 1TiB, not %v", x)
		} else {
			v.add(k, "must be between %dB and 1TiB, not %v", lo, x)
		}
	case !have:
		v.add(k, "is a burst of %s, which is not set; set %s too, or remove %s", needs, needs, key)
	default:
		return n
	}
	return 0
}
