package network

import (
	"container/list"
	"net/netip"
	"slices"
	"time"
)

// Name binding limits.
const (
	// MaxBindings caps the (name, address) pairs one Default remembers.
	// When full, expired pairs go first, then the least recently bound.
	MaxBindings = 4096
	// MaxAnswers caps how many addresses of one lookup are decided and
	// bound; the rest are dropped before any plugin sees them, so a huge
	// DNS answer cannot make the policy run thousands of times.
	MaxAnswers = 64
	// MinBindingTTL is the shortest name binding: a DNS TTL of 0 (or 1 s)
	// still lets the guest connect right after resolving.
	MinBindingTTL = time.Second
	// MaxBindingTTL is the longest name binding, whatever DNS says.
	MaxBindingTTL = 24 * time.Hour
	// DefaultNameTTL is the binding lifetime when the resolver gives no
	// TTL and Default.NameTTL is zero.
	DefaultNameTTL = 5 * time.Minute
)

type bindingKey struct {
	name string
	addr netip.Addr
}

type binding struct {
	bindingKey
	expires time.Time
	seq     uint64 // larger = bound more recently
}

// bindingTable remembers which names resolved to which addresses. It is
// not safe for concurrent use; Default guards it.
type bindingTable struct {
	order  list.List // of *binding, least recently bound first
	pairs  map[bindingKey]*list.Element
	byAddr map[netip.Addr]map[string]*list.Element
	seq    uint64
}

func (t *bindingTable) init() {
	if t.pairs == nil {
		t.pairs = make(map[bindingKey]*list.Element)
		t.byAddr = make(map[netip.Addr]map[string]*list.Element)
	}
}

// bind records name → addr until expires, refreshing an existing pair.
func (t *bindingTable) bind(name string, addr netip.Addr, expires, now time.Time) {
	t.init()
	t.seq++
	k := bindingKey{name, addr}
	if e, ok := t.pairs[k]; ok {
		b := e.Value.(*binding)
		b.expires, b.seq = expires, t.seq
		t.order.MoveToBack(e)
		return
	}
	if len(t.pairs) >= MaxBindings {
		t.evict(now)
	}
	e := t.order.PushBack(&binding{bindingKey: k, expires: expires, seq: t.seq})
	t.pairs[k] = e
	m := t.byAddr[addr]
	if m == nil {
		m = make(map[string]*list.Element)
		t.byAddr[addr] = m
	}
	m[name] = e
}

// evict makes room for one pair: every expired pair, or else the least
// recently bound one.
func (t *bindingTable) evict(now time.Time) {
	for e := t.order.Front(); e != nil; {
		next := e.Next()
		if !e.Value.(*binding).expires.After(now) {
			t.remove(e)
		}
		e = next
	}
	if len(t.pairs) >= MaxBindings {
		t.remove(t.order.Front())
	}
}

func (t *bindingTable) remove(e *list.Element) {
	b := t.order.Remove(e).(*binding)
	delete(t.pairs, b.bindingKey)
	if m := t.byAddr[b.addr]; m != nil {
		delete(m, b.name)
		if len(m) == 0 {
			delete(t.byAddr, b.addr)
		}
	}
}

// names returns the unexpired names bound to addr, most recently bound
// first, and forgets the expired ones.
func (t *bindingTable) names(addr netip.Addr, now time.Time) []string {
	m := t.byAddr[addr]
	if len(m) == 0 {
		return nil
	}
	live := make([]*binding, 0, len(m))
	for _, e := range m {
		b := e.Value.(*binding)
		if b.expires.After(now) {
			live = append(live, b)
		} else {
			t.remove(e)
		}
	}
	if len(live) == 0 {
		return nil
	}
	slices.SortFunc(live, func(a, b *binding) int {
		switch {
		case a.seq > b.seq:
			return -1
		case a.seq < b.seq:
			return 1
		}
		return 0
	})
	out := make([]string, len(live))
	for i, b := range live {
		out[i] = b.name
	}
	return out
}
