//go:build linux

package host

import (
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeThrottler is held back until its deadline.
type fakeThrottler struct{ until atomic.Int64 }

func (f *fakeThrottler) ThrottleWait(write bool) time.Duration {
	return max(0, time.Until(time.Unix(0, f.until.Load())))
}

// A throttled fd subscription in poll_oneoff's wait: it is not reported
// ready while throttled, even though the kernel says it is; once its
// tokens are there it is polled and reported; and the guest's own timeout
// always ends the wait on time, throttle or not.
func TestWaitThrottled(t *testing.T) {
	w, err := newWaker()
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	s := &state{wake: w}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	unix.Write(p[1], []byte("x")) // readable all along

	th := &fakeThrottler{}
	sub := func(d time.Duration) []pollSub {
		th.until.Store(time.Now().Add(d).UnixNano())
		return []pollSub{{req: -1, th: th, throttle: d, hfd: p[0], events: pollIn}}
	}

	// Throttled past the guest's timeout: the wait ends at the timeout,
	// the fd not ready.
	list := sub(time.Hour)
	start := time.Now()
	reqs, err := s.waitThrottled(list, nil, 50*time.Millisecond, start)
	if el := time.Since(start); err != nil || el < 50*time.Millisecond || el > 2*time.Second {
		t.Fatalf("wait = %v after %v; want the 50ms timeout", err, el)
	}
	if list[0].req >= 0 || len(reqs) != 0 {
		t.Fatal("a throttled fd was polled")
	}

	// Throttled for 30 ms, no guest timeout: reported after the
	// throttle, not before.
	list = sub(30 * time.Millisecond)
	start = time.Now()
	reqs, err = s.waitThrottled(list, nil, -1, start)
	el := time.Since(start)
	if err != nil || list[0].req != 0 || len(reqs) != 1 || reqs[0].revents&pollIn == 0 {
		t.Fatalf("after the throttle: err %v, req %d, reqs %+v", err, list[0].req, reqs)
	}
	if el < 30*time.Millisecond {
		t.Fatalf("ready after %v, before the 30ms throttle", el)
	}

	// A throttle that is renewed (someone else took the tokens) goes on
	// waiting, still within the guest's timeout.
	list = sub(10 * time.Millisecond)
	th.until.Store(time.Now().Add(time.Hour).UnixNano())
	start = time.Now()
	if _, err := s.waitThrottled(list, nil, 80*time.Millisecond, start); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 80*time.Millisecond || el > 2*time.Second || list[0].req >= 0 {
		t.Fatalf("renewed throttle: %v, req %d", el, list[0].req)
	}

	// Cancellation ends it at once.
	list = sub(time.Hour)
	w.wake()
	if _, err := s.waitThrottled(list, nil, -1, time.Now()); err == nil {
		t.Fatal("a cancelled wait went on")
	}
}
