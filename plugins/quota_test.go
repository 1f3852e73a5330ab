package plugins

import "github.com/wasmgate/wasmgate/network"

// quotasInBounds says what is wrong with accepted quotas, "" if nothing:
// every value within its documented bounds, no burst without its rate.
func quotasInBounds(q network.Quotas) string {
	rate := func(r float64) bool { return r >= 0 && r <= maxOpRate }
	within := func(n, lo, hi int64) bool { return n == 0 || n >= lo && n <= hi }
	switch {
	case !rate(q.ConnectRate) || !rate(q.AcceptRate) || !rate(q.DNSRate):
		return "an op rate out of bounds"
	case !within(q.ConnectBurst, 1, maxOpBurst) || !within(q.AcceptBurst, 1, maxOpBurst) || !within(q.DNSBurst, 1, maxOpBurst):
		return "an op burst out of bounds"
	case q.ConnectBurst > 0 && q.ConnectRate == 0 || q.AcceptBurst > 0 && q.AcceptRate == 0 || q.DNSBurst > 0 && q.DNSRate == 0:
		return "a burst without its rate"
	case q.SendBurst > 0 && q.SendRate == 0 || q.RecvBurst > 0 && q.RecvRate == 0:
		return "a byte burst without its rate"
	}
	for _, n := range []int64{q.SendRate, q.RecvRate, q.SendBurst, q.RecvBurst, q.SendTotal, q.RecvTotal} {
		if n < 0 || n > maxBytes {
			return "a byte value out of bounds"
		}
	}
	if q.MaxConnsOut < 0 || q.MaxConnsOut > maxConns || q.MaxConnsIn < 0 || q.MaxConnsIn > maxConns {
		return "a connection cap out of bounds"
	}
	return ""
}
