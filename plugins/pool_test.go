package plugins

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeInst struct {
	dead, closed atomic.Bool
	live         *atomic.Int32
}

func (f *fakeInst) Dead() bool { return f.dead.Load() }
func (f *fakeInst) Close() {
	if !f.closed.Swap(true) {
		f.live.Add(-1)
	}
}

// TestPoolHammer: many goroutines share a pool of 3; never more than 3
// instances exist or are in use, dead ones are replaced, waiters are
// served, and everything is back at the end.
func TestPoolHammer(t *testing.T) {
	p := newPool[*fakeInst](3)
	var live, inUse, maxLive, maxUse atomic.Int32
	bump := func(v *atomic.Int32, m *atomic.Int32) {
		n := v.Add(1)
		for {
			old := m.Load()
			if n <= old || m.CompareAndSwap(old, n) {
				return
			}
		}
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				inst, err := p.get(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if inst == nil {
					inst = &fakeInst{live: &live}
					bump(&live, &maxLive)
				}
				bump(&inUse, &maxUse)
				if (g+i)%17 == 0 {
					inst.dead.Store(true)
				}
				inUse.Add(-1)
				p.put(inst)
			}
		}()
	}
	wg.Wait()
	if maxLive.Load() > 3 || maxUse.Load() > 3 {
		t.Fatalf("up to %d instances lived and %d were in use; the pool size is 3", maxLive.Load(), maxUse.Load())
	}
	if p.out != 0 || len(p.waiters) != 0 || int(live.Load()) != len(p.idle) {
		t.Fatalf("out=%d waiters=%d live=%d idle=%d", p.out, len(p.waiters), live.Load(), len(p.idle))
	}
	p.close()
	if live.Load() != 0 {
		t.Fatalf("%d instances not closed", live.Load())
	}
	if _, err := p.get(context.Background()); err == nil {
		t.Fatal("get on a closed pool succeeded")
	}
}

// TestPoolWaitCancel: a caller waiting on an exhausted pool gives up with
// its context, and the slot is not lost; a waiter is handed the instance
// that comes back.
func TestPoolWaitCancel(t *testing.T) {
	p := newPool[*fakeInst](1)
	var live atomic.Int32
	held, err := p.get(context.Background())
	if err != nil || held != nil {
		t.Fatal(held, err)
	}
	held = &fakeInst{live: &live}
	live.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.get(ctx); err == nil {
		t.Fatal("get on an exhausted pool did not time out")
	}
	got := make(chan *fakeInst)
	go func() {
		inst, err := p.get(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- inst
	}()
	for {
		p.mu.Lock()
		n := len(p.waiters)
		p.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	p.put(held)
	if inst := <-got; inst != held {
		t.Fatalf("the waiter got %p, want the returned instance %p", inst, held)
	}
	p.put(held)
	if p.out != 0 || len(p.idle) != 1 {
		t.Fatalf("out=%d idle=%d", p.out, len(p.idle))
	}
}
