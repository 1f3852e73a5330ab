package host

import (
	"context"
	"encoding/binary"
	"sync"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
	"github.com/wasmgate/wasmgate/network"
)

// maxSubscriptions bounds poll_oneoff's input so a guest cannot make the
// host allocate without limit: at least 4096, and enough for every fd the
// guest may hold to be waited on for reading and writing at once, plus
// clocks (Go's runtime polls every blocked connection in one call, so a
// server holding 10,000 connections subscribes to 10,000 fds).
func (s *state) maxSubscriptions() uint32 {
	return uint32(max(4096, 2*s.cfg.MaxFds()+64))
}

const (
	subSize   = 48
	eventSize = 32
)

// pollOneoff waits for clock and fd subscriptions.
//
// Layout: subscription {userdata u64 @0, tag u8 @8, clock {id u32 @16,
// timeout u64 @24, precision u64 @32, flags u16 @40} | fd_readwrite {fd u32
// @16}}; event {userdata u64 @0, error u16 @8, type u8 @10, fd_readwrite
// {nbytes u64 @16, flags u16 @24}}.
//
// Errors of one subscription (EBADF for an unknown fd, EINVAL for an
// unknown clock) are reported in its event and the call succeeds: Go's
// runtime dies on any poll_oneoff errno but EINTR. Call errnos: EINVAL for
// nsubscriptions == 0, EFAULT for bad pointers. When the instance is
// cancelled every subscription completes with ECANCELED.
func (s *state) pollOneoff(ctx context.Context, m api.Module, st []uint64) wasi.Errno {
	if testHookPoll != nil {
		testHookPoll(ctx)
	}
	in, out, nsubs, neventsPtr := uint32(st[0]), uint32(st[1]), uint32(st[2]), uint32(st[3])
	if nsubs == 0 {
		return wasi.EINVAL
	}
	if nsubs > s.maxSubscriptions() {
		return wasi.ENOTSUP
	}
	mem := m.Memory()
	subs, err := memRead(mem, in, nsubs*subSize)
	if err != nil {
		return errno(err)
	}
	events, err := memRead(mem, out, nsubs*eventSize)
	if err != nil {
		return errno(err)
	}
	if _, err := memRead(mem, neventsPtr, 4); err != nil {
		return errno(err)
	}
	// Decode everything before writing: in and out may overlap.
	var subsStack [16]pollSub
	var list []pollSub
	if nsubs <= uint32(len(subsStack)) {
		list = subsStack[:nsubs]
	} else {
		// Go's netpoll passes every armed descriptor on every call: a
		// busy server's polls are large and frequent, so their
		// decoding buffers are reused rather than left to the GC.
		p := pollSubPool.Get().(*[]pollSub)
		defer pollSubPool.Put(p)
		if cap(*p) < int(nsubs) {
			*p = make([]pollSub, nsubs)
		}
		list = (*p)[:nsubs]
		clear(list)
	}
	// The fd subscriptions' entries, looked up under one lock of the
	// table rather than one per subscription.
	s.fds.lookupPoll(subs, list)
	reqs := s.pollReqs[:0]
	var monoNow, realNow uint64
	monoRead, realRead := false, false
	timeout := time.Duration(-1)
	immediate := false
	throttled := false
	for i := range list {
		b := subs[i*subSize:]
		sb := &list[i]
		sb.userdata = binary.LittleEndian.Uint64(b[0:])
		sb.typ = b[8]
		sb.req = -1
		switch sb.typ {
		case wasi.EventtypeClock:
			id := binary.LittleEndian.Uint32(b[16:])
			t := binary.LittleEndian.Uint64(b[24:])
			flags := binary.LittleEndian.Uint16(b[40:])
			var d time.Duration
			if flags&wasi.SubclockAbstime != 0 {
				var now uint64
				switch id {
				case wasi.ClockMonotonic:
					if !monoRead {
						monoNow, _ = s.now(id)
						monoRead = true
					}
					now = monoNow
				case wasi.ClockRealtime:
					if !realRead {
						realNow, _ = s.now(id)
						realRead = true
					}
					now = realNow
				default:
					sb.errno, sb.ready, immediate = wasi.EINVAL, true, true
					continue
				}
				if t > now {
					d = durationOf(t - now)
				}
			} else {
				if id != wasi.ClockMonotonic && id != wasi.ClockRealtime {
					sb.errno, sb.ready, immediate = wasi.EINVAL, true, true
					continue
				}
				d = durationOf(t)
			}
			sb.deadline = d
			if d == 0 {
				sb.ready, immediate = true, true
			} else if timeout < 0 || d < timeout {
				timeout = d
			}
		case wasi.EventtypeFdRead, wasi.EventtypeFdWrite:
			e := sb.entry
			sb.entry = nil // not kept alive by a pooled list
			if e == nil {
				sb.errno, sb.ready, immediate = wasi.EBADF, true, true
				continue
			}
			hfd, ok := e.file.pollFd()
			if !ok {
				sb.ready, immediate = true, true // files are always ready
				continue
			}
			ev := int16(pollIn)
			if sb.typ == wasi.EventtypeFdWrite {
				ev = pollOut
			}
			if th := throttlerOf(e.file); th != nil {
				if w := th.ThrottleWait(sb.typ == wasi.EventtypeFdWrite); w > 0 {
					// Held back by send_rate / recv_rate: not
					// ready before the tokens are there, however
					// ready the kernel says it is (the guest would
					// only retry and spin); polled from then on.
					sb.th, sb.throttle, sb.hfd, sb.events = th, w, hfd, ev
					throttled = true
					continue
				}
			}
			sb.req = len(reqs)
			reqs = append(reqs, pollReq{fd: hfd, events: ev})
		default:
			sb.errno, sb.ready, immediate = wasi.EINVAL, true, true
		}
	}
	if immediate {
		timeout = 0
	}
	start := time.Now()
	var werr error
	if throttled {
		reqs, werr = s.waitThrottled(list, reqs, timeout, start)
	} else {
		_, werr = s.wake.waitFds(reqs, timeout)
	}
	s.pollReqs = reqs[:0]
	n := uint32(0)
	put := func(sb *pollSub) {
		b := events[n*eventSize : (n+1)*eventSize]
		clear(b)
		binary.LittleEndian.PutUint64(b[0:], sb.userdata)
		binary.LittleEndian.PutUint16(b[8:], uint16(sb.errno))
		b[10] = sb.typ
		if sb.hangup {
			binary.LittleEndian.PutUint16(b[24:], wasi.EventFdReadwriteHangup)
		}
		n++
	}
	if werr != nil {
		s.stopIfDone(ctx, m)
		code := errno(werr)
		for i := range list {
			list[i].errno = code
			put(&list[i])
		}
		return errno(memPutU32(mem, neventsPtr, n))
	}
	elapsed := time.Since(start)
	for i := range list {
		sb := &list[i]
		switch {
		case sb.ready:
		case sb.typ == wasi.EventtypeClock:
			sb.ready = sb.deadline <= elapsed
		case sb.req >= 0:
			r := reqs[sb.req].revents
			switch {
			case r&pollNval != 0:
				sb.errno, sb.ready = wasi.EBADF, true
			case r&(pollIn|pollOut|pollErr) != 0:
				sb.ready = true
			case r&pollHup != 0:
				sb.ready, sb.hangup = true, true
			}
		}
		if sb.ready {
			put(sb)
		}
	}
	return errno(memPutU32(mem, neventsPtr, n))
}

// testHookPoll, set by the tests before any guest runs, sees every
// poll_oneoff call with its context.
var testHookPoll func(ctx context.Context)

// pollSub is one decoded poll_oneoff subscription.
type pollSub struct {
	userdata uint64
	typ      uint8
	errno    wasi.Errno
	ready    bool
	hangup   bool
	req      int      // index in reqs, -1 if none
	entry    *fdEntry // an fd subscription's entry, nil if the fd is not open
	deadline time.Duration
	// A throttled fd subscription (Throttler): not polled until
	// throttle (from the start of the wait) has passed.
	th       network.Throttler
	throttle time.Duration
	hfd      int
	events   int16
}

// throttlerOf is f's socket as a Throttler, nil if it is none.
func throttlerOf(f file) network.Throttler {
	sf, ok := f.(*socketFile)
	if !ok {
		return nil
	}
	th, _ := sf.sock.(network.Throttler)
	return th
}

// waitThrottled is poll_oneoff's wait when some fd subscriptions are
// throttled (docs/sockets.md#quotas): it waits on reqs until the earliest
// throttle passes, then looks again at the throttled subscriptions (those
// whose tokens are there join reqs, the others get a new throttle), and
// waits again, until something is ready or timeout (from start; < 0: none)
// passes. The guest's own timeout is never exceeded, and a throttled fd is
// never reported ready before its tokens are there.
func (s *state) waitThrottled(list []pollSub, reqs []pollReq, timeout time.Duration, start time.Time) ([]pollReq, error) {
	defer func() {
		for i := range list {
			list[i].th = nil // not kept alive by a pooled list
		}
	}()
	for {
		next := time.Duration(-1)
		for i := range list {
			if t := list[i].throttle; t > 0 && (next < 0 || t < next) {
				next = t
			}
		}
		wait := timeout
		if next >= 0 && (wait < 0 || next < wait) {
			wait = next
		}
		left := wait
		if wait >= 0 {
			left = max(0, wait-time.Since(start))
		}
		n, err := s.wake.waitFds(reqs, left)
		elapsed := time.Since(start)
		if err != nil || n > 0 || next < 0 || (timeout >= 0 && elapsed >= timeout) {
			return reqs, err
		}
		for i := range list {
			sb := &list[i]
			if sb.throttle <= 0 || sb.throttle > elapsed {
				continue
			}
			if w := sb.th.ThrottleWait(sb.events == pollOut); w > 0 {
				sb.throttle = elapsed + w
				continue
			}
			sb.throttle = 0
			sb.req = len(reqs)
			reqs = append(reqs, pollReq{fd: sb.hfd, events: sb.events})
		}
	}
}

// pollSubPool holds decoding buffers of polls with more subscriptions than
// fit on the stack.
var pollSubPool = sync.Pool{New: func() any { return new([]pollSub) }}

// lookupPoll sets list[i].entry for every fd subscription in subs (the
// raw subscription array, len(list) of them), under one lock of the table.
// Entries of fds that are not open stay nil.
func (t *fdTable) lookupPoll(subs []byte, list []pollSub) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range list {
		b := subs[i*subSize:]
		if typ := b[8]; typ != wasi.EventtypeFdRead && typ != wasi.EventtypeFdWrite {
			continue
		}
		fd := int32(binary.LittleEndian.Uint32(b[16:]))
		if fd >= 0 && int(fd) < len(t.entries) {
			list[i].entry = t.entries[fd]
		}
	}
}

// durationOf converts guest ns to a Duration, saturating.
func durationOf(ns uint64) time.Duration {
	if ns > uint64(1<<63-1) {
		return 1<<63 - 1
	}
	return time.Duration(ns)
}
