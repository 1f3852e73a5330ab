package host

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
	"github.com/wasmgate/wasmgate/network"
)

// TestFdTableLowestFree: against a plain model, random inserts, removes
// and renumbers always give the lowest free fd (what POSIX promises and
// what guests such as wasi-libc assume), with the free-slot hint that
// spares insert a scan of every open fd.
func TestFdTableLowestFree(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var tb fdTable
	var model []bool // model[fd]: in use
	lowest := func() int {
		for i, used := range model {
			if !used {
				return i
			}
		}
		return len(model)
	}
	open := func() []int32 {
		var fds []int32
		for i, used := range model {
			if used {
				fds = append(fds, int32(i))
			}
		}
		return fds
	}
	for step := 0; step < 20000; step++ {
		fds := open()
		switch op := r.IntN(10); {
		case op < 5 || len(fds) == 0:
			want := lowest()
			fd, err := tb.insert(&fdEntry{file: &outFile{}})
			if err != nil || fd != int32(want) {
				t.Fatalf("step %d: insert = %d, %v; want %d", step, fd, err, want)
			}
			if want == len(model) {
				model = append(model, true)
			} else {
				model[want] = true
			}
		case op < 9:
			fd := fds[r.IntN(len(fds))]
			if _, err := tb.remove(fd); err != nil {
				t.Fatalf("step %d: remove %d: %v", step, fd, err)
			}
			model[fd] = false
		default:
			from, to := fds[r.IntN(len(fds))], fds[r.IntN(len(fds))]
			if _, err := tb.renumber(from, to); err != nil {
				t.Fatalf("step %d: renumber %d %d: %v", step, from, to, err)
			}
			if from != to {
				model[from] = false
			}
		}
		if tb.n != len(open()) {
			t.Fatalf("step %d: n = %d, model has %d", step, tb.n, len(open()))
		}
	}
	tb.closeAll()
	if fd, err := tb.insert(&fdEntry{file: &outFile{}}); err != nil || fd != 0 {
		t.Fatalf("insert after closeAll = %d, %v; want 0", fd, err)
	}
	if _, err := tb.remove(5); err != wasi.EBADF {
		t.Fatalf("remove of a never-used fd: %v", err)
	}
}

// BenchmarkFdTableAccept: one accept and one close (insert + remove of
// the same slot) with 1000 other fds open below it.
//
//	go test -run XXX -bench FdTableAccept ./host/
func BenchmarkFdTableAccept(b *testing.B) {
	var tb fdTable
	for i := 0; i < 1000; i++ {
		tb.insert(&fdEntry{file: &outFile{}})
	}
	e := &fdEntry{file: &outFile{}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		fd, err := tb.insert(e)
		if err != nil {
			b.Fatal(err)
		}
		tb.remove(fd)
	}
}

// BenchmarkPollOneoffManyFds: a non-blocking poll_oneoff (a clock
// subscription of timeout 0) with n idle UDP sockets subscribed for
// reading, as Go's netpoll passes every armed descriptor on each call.
//
//	go test -run XXX -bench PollOneoffManyFds ./host/
func BenchmarkPollOneoffManyFds(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			h := newHarness(b, nil)
			if _, ok := h.m.Memory().Grow(4); !ok {
				b.Fatal("grow")
			}
			ctx := context.Background()
			putSub(h, 0, 0, wasi.EventtypeClock, wasi.ClockMonotonic, 0, 0)
			for i := 0; i < n; i++ {
				s, err := (network.System{}).Socket(ctx, network.UDP, network.IPv4)
				if err != nil {
					b.Fatal(err)
				}
				fd, err := h.s.fds.insert(newSocketEntry(&socketFile{sock: s}, true))
				if err != nil {
					b.Fatal(err)
				}
				putSub(h, uint32(i+1)*subSize, uint64(i+1), wasi.EventtypeFdRead, uint32(fd), 0, 0)
			}
			nsubs := uint64(n + 1)
			out := uint64(nsubs * subSize)
			nev := out + nsubs*eventSize
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if e := h.call("poll_oneoff", 0, out, nsubs, nev); e != 0 || h.u32(uint32(nev)) != 1 {
					b.Fatalf("errno %d, %d events", e, h.u32(uint32(nev)))
				}
			}
		})
	}
}
