package kernel

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/internal/ruletable/ruletabletest"
	"github.com/wasmgate/wasmgate/plugins/allowlist"
	"github.com/wasmgate/wasmgate/plugins/builtin"
	"github.com/wasmgate/wasmgate/plugins/denylist"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// The rule lists' shortcut in wasm (internal/policyhook) checks the shape
// of the binary request inside sdk/policy's fast-path export, which only
// runs in wasm. These tests hold the shipped bundle, byte for byte, to the
// native decoder and the same plugin run natively, on well-formed requests
// of every shape and on damaged ones: the shortcut must neither take a
// request the decoder reads differently nor answer one it refuses.

// shortcutRules is ruletabletest.Rules as the plugins' JSON config.
var shortcutRules = func() string {
	b, _ := json.Marshal(map[string][]string{"rules": ruletabletest.Rules})
	return string(b)
}()

type shortcutCase struct {
	name   string
	inst   *Instance
	module *Module
	native *policy.Plugin
}

func shortcutCases(t testing.TB) []*shortcutCase {
	var cs []*shortcutCase
	for _, c := range []struct {
		name   string
		native func([]byte) *policy.Plugin
	}{{"allowlist", allowlist.Native}, {"denylist", denylist.Native}} {
		wasm, _ := builtin.Lookup(c.name)
		m := compiled(t, Config{Name: c.name, Wasm: wasm, Timeout: 10 * time.Second, Config: builtin.Config(c.name, shortcutRules)})
		sc := &shortcutCase{name: c.name, module: m, native: c.native([]byte(shortcutRules))}
		sc.instance(t)
		cs = append(cs, sc)
	}
	return cs
}

// instance (re)creates the case's instance and makes one decision, which
// loads the config: from then on the shortcut is offered.
func (c *shortcutCase) instance(t testing.TB) {
	inst := instantiate(t, c.module)
	if inst.FastSize() == 0 {
		t.Fatal("no fast path")
	}
	c.inst = inst
	c.check(t, shortcutSeeds(t)[0])
}

// check fails unless the wasm fast path's answer to data is the native one:
// the same verdict bytes, or an error when the decoder refuses data.
func (c *shortcutCase) check(t testing.TB, data []byte) {
	t.Helper()
	got, err := c.inst.DecideFast(data)
	if c.inst.Dead() {
		t.Fatalf("%s: %x: the instance died: %v", c.name, data, err)
	}
	var r policy.Request
	if perr := policy.ParseRequestBinary(data, &r); perr != nil {
		if err == nil {
			t.Fatalf("%s: %x: the decoder refuses it (%v), wasm answered %x", c.name, data, perr, got)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %x: wasm failed: %v", c.name, data, err)
	}
	want := policy.AppendVerdictBinary(nil, c.native.Invoke(r))
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %x (%+v):\nwasm   %q\nnative %q", c.name, data, r, got, want)
	}
}

// shortcutSeeds are binary requests of the shortcut's shape and of the
// shapes next to it.
func shortcutSeeds(t testing.TB) [][]byte {
	ip := netip.MustParseAddr
	reqs := []policy.Request{
		{Op: policy.OpTCPConnect, Proto: "tcp", Addr: ip("127.0.0.1"), Port: 9000, Guest: "app", TimeMs: 1},
		{Op: policy.OpTCPConnect, Proto: "tcp", Addr: ip("10.1.2.3"), Port: 25, TimeMs: 2},
		{Op: policy.OpUDPSend, Proto: "udp", Addr: ip("10.1.2.3"), Port: 123, Guest: "a-longer-guest-name", TimeMs: 3},
		{Op: policy.OpTCPBind, Proto: "tcp", Addr: ip("127.0.0.1"), Port: 8080, Guest: "app", TimeMs: 4},
		{Op: policy.OpTCPConnect, Proto: "tcp", Addr: ip("93.184.216.34"), Port: 443, Names: []string{"api.example.test"}, Guest: "app", TimeMs: 5},
		{Op: policy.OpTCPConnect, Proto: "tcp", Addr: ip("192.168.0.7"), Port: 8080, Labels: map[string]string{"team": "a"}, Guest: "app", TimeMs: 6},
		{Op: policy.OpTCPAccept, Proto: "tcp", Addr: ip("10.9.9.9"), Port: 40000, Local: netip.MustParseAddrPort("127.0.0.1:8080"), Guest: "app", TimeMs: 7},
		{Op: policy.OpUDPConnect, Proto: "udp", Addr: ip("2001:db8::53"), Port: 53, Guest: "app", TimeMs: 8},
		{Op: policy.OpDNSLookup, Name: "x.example.test", Guest: "app", TimeMs: 9},
	}
	var out [][]byte
	for i := range reqs {
		b, ok := policy.AppendRequestBinary(nil, &reqs[i])
		if !ok {
			t.Fatalf("cannot encode %+v", reqs[i])
		}
		out = append(out, b)
	}
	return out
}

// TestShortcutWireSameAsNative: every seed, and 20,000 damaged copies of
// them (bytes changed, cut or added), in one instance per plugin, so that
// the shortcut and the usual path alternate.
func TestShortcutWireSameAsNative(t *testing.T) {
	cs := shortcutCases(t)
	seeds := shortcutSeeds(t)
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 20000 {
		b := bytes.Clone(seeds[i%len(seeds)])
		switch r.IntN(4) {
		case 0: // one to three bytes changed
			for range 1 + r.IntN(3) {
				b[r.IntN(len(b))] = byte(r.IntN(256))
			}
		case 1: // cut
			b = b[:r.IntN(len(b))]
		case 2: // a byte added
			k := r.IntN(len(b) + 1)
			b = append(b[:k], append([]byte{byte(r.IntN(256))}, b[k:]...)...)
		}
		for _, c := range cs {
			c.check(t, b)
		}
	}
}

// FuzzShortcutWire is TestShortcutWireSameAsNative's check on any bytes.
func FuzzShortcutWire(f *testing.F) {
	for _, s := range shortcutSeeds(f) {
		f.Add(s)
	}
	cs := shortcutCases(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range cs {
			if len(data) > c.inst.FastSize() {
				return
			}
			c.check(t, data)
		}
	})
}
