//go:build wasip1

package policyhook

// Offer makes f the module's shortcut (IPv4).
func Offer(f func(op int, addr [4]byte, port uint16) (action byte, ttlMs int64, reason string, ok bool)) {
	IPv4 = f
}
