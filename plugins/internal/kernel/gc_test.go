package kernel

import (
	"net/netip"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// TestAllocatingPluginLives: a Go plugin whose decisions allocate keeps a
// small heap over many decisions, on the fast path and over JSON. Go's
// runtime runs no other goroutine once an export returns, and now and then
// a collection stalls: without sdk/policy's yield, this plugin's instance
// (2 KiB per decision) grew to the 64 MiB cap and died after 160,000 to
// 190,000 decisions; yielding alone let it grow to 24 MiB in 400,000; with
// the collection yield forces when a cycle stalls it stays at 12-13 MiB
// over 2,000,000.
func TestAllocatingPluginLives(t *testing.T) {
	if testing.Short() {
		t.Skip("400,000 plugin calls")
	}
	m := compiled(t, Config{Name: "allocs", Wasm: testbuild.Bytes(t, "plugins/internal/testplugins/allocs"), Timeout: 10 * time.Second})
	inst := instantiate(t, m)
	r := policy.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("10.0.0.1"), Port: 80, Guest: "app", TimeMs: 1}
	bin, _ := policy.AppendRequestBinary(nil, &r)
	js := policy.AppendRequestJSON(nil, &r)
	const maxMemory = 20 << 20
	for i := range 400000 {
		var err error
		if i%8 == 7 {
			_, err = inst.Call("decide", js)
		} else {
			_, err = inst.DecideFast(bin)
		}
		if err != nil || inst.Dead() {
			t.Fatalf("decision %d: %v (memory %d bytes)", i, err, inst.mod.Memory().Size())
		}
		if n := inst.mod.Memory().Size(); n > maxMemory {
			t.Fatalf("decision %d: memory grew to %d bytes", i, n)
		}
	}
}
