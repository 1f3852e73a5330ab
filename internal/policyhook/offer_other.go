//go:build !wasip1

package policyhook

// Offer does nothing outside wasm: natively a plugin decides on the
// request as the chain holds it, and concurrent decisions would race on
// IPv4.
func Offer(f func(op int, addr [4]byte, port uint16) (action byte, ttlMs int64, reason string, ok bool)) {
}
