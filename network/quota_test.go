package network

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

// The bucket starts full, refuses past its burst, refills at its rate on
// the injected clock, and never holds more than its burst.
func TestBucketOps(t *testing.T) {
	b := newBucket(10, 3) // one token per 100 ms
	now := int64(0)
	for i := 0; i < 3; i++ {
		if !b.tryTake(now) {
			t.Fatalf("take %d of the burst refused", i+1)
		}
	}
	if b.tryTake(now) {
		t.Fatal("a 4th token past the burst of 3")
	}
	if w := b.wait(now, 1); w != 100*time.Millisecond {
		t.Fatalf("wait for 1 token = %v, want 100ms", w)
	}
	now += 99 * ms
	if b.tryTake(now) {
		t.Fatal("a token after 99 ms at 10/s")
	}
	now += 1 * ms
	if !b.tryTake(now) {
		t.Fatal("no token after 100 ms at 10/s")
	}
	now += 10 * int64(time.Second) // long idle: full, not more
	if a := b.avail(now); a != 3 {
		t.Fatalf("avail after idling = %d, want the burst 3", a)
	}
	for i := 0; i < 3; i++ {
		b.tryTake(now)
	}
	if b.tryTake(now) {
		t.Fatal("idle time accumulated past the burst")
	}
}

// Byte buckets: a stream call gets what the bucket holds, a call on an
// empty bucket gets a wait (for the low-water mark, 10 ms worth), a
// datagram charged whole puts the bucket in debt, and throttled time
// counts overlapping waits once.
func TestBucketBytes(t *testing.T) {
	b := newBucket(1000, 100) // 1 byte per ms, low = 10
	if b.low != 10 {
		t.Fatalf("low = %d, want 10", b.low)
	}
	now := int64(0)
	n, w := b.grant(now, 300)
	if n != 100 || w != 0 {
		t.Fatalf("grant(300) on a full bucket = %d, %v; want 100, 0", n, w)
	}
	b.take(now, n)
	n, w = b.grant(now, 300)
	if n != 0 || w != 10*time.Millisecond {
		t.Fatalf("grant on an empty bucket = %d, %v; want 0, 10ms", n, w)
	}
	if n, _ := b.grant(now+5*ms, 3); n != 3 {
		t.Fatalf("a 3-byte call after 5 ms = %d, want 3 (needs only what it asks)", n)
	}
	now += 50 * ms
	if n, _ := b.grant(now, 300); n != 50 {
		t.Fatalf("grant after 50 ms = %d, want 50", n)
	}
	b.take(now, 400) // a datagram of 400 on 50 tokens: 350 in debt
	if a := b.avail(now); a != 0 {
		t.Fatalf("avail in debt = %d", a)
	}
	if w := b.wait(now, 10); w != 360*time.Millisecond {
		t.Fatalf("wait in debt = %v, want 360ms", w)
	}
	if got := b.throttled(0, 10*time.Millisecond); got != 10*time.Millisecond {
		t.Fatalf("throttled = %v", got)
	}
	if got := b.throttled(5*ms, 10*time.Millisecond); got != 5*time.Millisecond {
		t.Fatalf("overlapping throttled = %v, want the 5ms not yet counted", got)
	}
	if got := b.throttled(6*ms, time.Millisecond); got != 0 {
		t.Fatalf("throttled inside a counted wait = %v, want 0", got)
	}
}

// The default burst is one second's worth, at least one; a fractional
// rate works (one token per 2 s).
func TestBucketDefaults(t *testing.T) {
	if b := newBucket(20, 0); b.burst != 20 {
		t.Fatalf("default burst of 20/s = %d", b.burst)
	}
	b := newBucket(0.5, 0)
	if b.burst != 1 {
		t.Fatalf("default burst of 0.5/s = %d", b.burst)
	}
	if !b.tryTake(0) || b.tryTake(int64(1999*time.Millisecond)) || !b.tryTake(int64(2*time.Second)) {
		t.Fatal("0.5/s is not one token per 2 s")
	}
}

// SetQuotas keeps a bucket whose rate and burst are unchanged (its used
// tokens stay used) and starts a changed one full; Quotas{} removes all.
func TestSetQuotasKeepsBuckets(t *testing.T) {
	d := &Default{}
	var now int64
	d.quotaClock = func() int64 { return now }
	d.SetQuotas(Quotas{DNSRate: 1, DNSBurst: 1, MaxConnsOut: 3})
	if err := d.quotaDNS("a.test"); err != nil {
		t.Fatal(err)
	}
	if err := d.quotaDNS("a.test"); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("2nd lookup = %v, want EAGAIN", err)
	}
	d.SetQuotas(Quotas{DNSRate: 1, DNSBurst: 1, MaxConnsOut: 5}) // rate unchanged
	if err := d.quotaDNS("a.test"); err == nil {
		t.Fatal("a reload with the same dns_rate refilled the bucket")
	}
	d.SetQuotas(Quotas{DNSRate: 2, DNSBurst: 1})
	if err := d.quotaDNS("a.test"); err != nil {
		t.Fatalf("a new dns_rate starts full: %v", err)
	}
	d.SetQuotas(Quotas{})
	if d.quota.Load() != nil {
		t.Fatal("Quotas{} left a state")
	}
	for i := 0; i < 10; i++ {
		if err := d.quotaDNS("a.test"); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzBucket: whatever the rate, burst and schedule of calls, a bucket
// never grants more than its burst plus the rate times the time passed,
// avail stays within [0, burst], and a call told to wait w gets its tokens
// once w has passed.
func FuzzBucket(f *testing.F) {
	f.Add(uint32(10), uint16(3), []byte{0, 1, 2, 200, 7, 9})
	f.Add(uint32(1<<20), uint16(1000), []byte{255, 0, 0, 3, 128, 128, 64})
	f.Add(uint32(1), uint16(1), []byte{1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, rate uint32, burst uint16, ops []byte) {
		if rate == 0 || burst == 0 || len(ops) > 512 {
			return
		}
		b := newBucket(float64(rate), int64(burst))
		var now, granted int64
		for i, op := range ops {
			now += int64(op&0x3f) * int64(time.Millisecond) / 4
			want := int64(op>>6)*int64(burst)/2 + 1
			n, w := b.grant(now, want)
			if a := b.avail(now); a < 0 || a > int64(burst) {
				t.Fatalf("op %d: avail %d outside [0, %d]", i, a, burst)
			}
			if n > want || n < 0 {
				t.Fatalf("op %d: granted %d of %d", i, n, want)
			}
			if n == 0 {
				if w <= 0 {
					t.Fatalf("op %d: nothing granted and no wait", i)
				}
				if m, _ := b.grant(now+int64(w), want); m == 0 {
					t.Fatalf("op %d: still nothing after the %v wait", i, w)
				}
				continue
			}
			b.take(now, n)
			granted += n
			limit := float64(burst) + float64(rate)*float64(now)/1e9 + 1
			if float64(granted) > limit {
				t.Fatalf("op %d: %d tokens granted by %v, limit %.0f", i, granted, time.Duration(now), limit)
			}
		}
	})
}
