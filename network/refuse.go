package network

// Refuser is implemented by listening sockets that can refuse the
// connections waiting in their accept queue. RefusePending takes up to max
// of them from the kernel and resets each at once (SO_LINGER 0, so the peer
// sees ECONNRESET on its first read or write rather than an orderly close
// or a connection that hangs unanswered), and reports how many it refused.
// No policy is asked: nothing of the connection reaches the guest.
//
// The host calls it when the guest cannot take another connection (it is
// at its fd or socket limit: accept fails with EMFILE), so that clients
// are refused at once instead of waiting in the kernel's queue
// (docs/sockets.md, "Limits"). Like Splicer it is optional: callers test
// for it with a type assertion.
type Refuser interface {
	RefusePending(max int) int
}

// RefusePending delegates to the wrapped socket when it is a Refuser; a
// refused connection never held one of the guest's MaxSockets slots.
func (g *guardedSocket) RefusePending(max int) int {
	if r, ok := g.s.(Refuser); ok && g.proto == TCP {
		return r.RefusePending(max)
	}
	return 0
}
