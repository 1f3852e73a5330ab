package kernel

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"
)

func TestMain(m *testing.M) {
	if os.Getenv("WASMGATE_SPIN") == "1" { // a CPU burner of TestTimeoutWallClock
		spin()
		os.Exit(0)
	}
	code := m.Run()
	testbuild.Cleanup()
	os.Exit(code)
}

const multi = "plugins/internal/testplugins/multi"

// compiled is cfg compiled with the tests' compilation cache, closed when
// the test ends.
func compiled(t testing.TB, cfg Config) *Module {
	t.Helper()
	m, err := NewEngineWithCache(testbuild.Cache()).Compile(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

func compileMulti(t testing.TB, behave string, timeout time.Duration) *Module {
	return compileMultiPages(t, behave, timeout, 160)
}

func compileMultiPages(t testing.TB, behave string, timeout time.Duration, pages uint32) *Module {
	t.Helper()
	e := NewEngineWithCache(testbuild.Cache())
	m, err := e.Compile(context.Background(), Config{
		Name: "multi", Wasm: testbuild.Bytes(t, multi), Timeout: timeout,
		MemoryPages: pages, Config: map[string]string{"behave": behave, "describe": `{"name":"multi"}`},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

const req = `{"op":"tcp.connect","proto":"tcp","addr":"198.51.100.10","port":443,"names":["api.example.test"],"guest":"app","time_ms":1}`

func TestCallOK(t *testing.T) {
	m := compileMulti(t, "ok", time.Second)
	inst, err := m.Instantiate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	for range 3 {
		out, err := inst.Call("decide", []byte(req))
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"verdict":"allow","reason":"https to 198.51.100.10","cache_ttl_ms":0}`; string(out) != want {
			t.Fatalf("got %s, want %s", out, want)
		}
	}
	out, err := inst.Call("describe", nil)
	if err != nil || string(out) != `{"name":"multi"}` {
		t.Fatalf("describe: %s %v", out, err)
	}
	// Echo round-trips every input length, exercising the u64 and u8 paths.
	me := compileMulti(t, "echo", time.Second)
	ie, err := me.Instantiate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ie.Close()
	for n := 0; n < 40; n++ {
		in := strings.Repeat("abcdefghij", 4)[:n]
		out, err := ie.Call("decide", []byte(in))
		if err != nil || string(out) != in {
			t.Fatalf("echo %q: %q %v", in, out, err)
		}
	}
}

func TestMisbehaving(t *testing.T) {
	cases := []struct {
		behave string
		kind   ErrorKind
		msg    string
		dead   bool
		tmo    time.Duration
	}{
		{"trap", KindTrap, "trap", true, 0},
		{"loop", KindTimeout, "timeout after 50ms", true, 50 * time.Millisecond},
		{"alloc", KindTrap, "trap", true, 0},
		{"huge", KindOutput, "output of 204800 bytes exceeds the 65536-byte limit", true, 0},
		{"rc", KindRC, "returned 7 without an error", true, 0},
		{"errset", KindPlugin, "plugin error: bad things", false, 0},
		{"http", KindTrap, "no network access", true, 0},
	}
	for _, c := range cases {
		t.Run(c.behave, func(t *testing.T) {
			if c.tmo == 0 {
				// Generous: -race on a busy machine is slow; only "loop"
				// is meant to time out.
				c.tmo = 10 * time.Second
			}
			pages := uint32(160)
			if c.behave == "alloc" {
				pages = 64 // the smallest a Go plugin starts in: reach the cap fast
			}
			m := compileMultiPages(t, c.behave, c.tmo, pages)
			inst, err := m.Instantiate(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer inst.Close()
			_, err = inst.Call("decide", []byte(req))
			ce, ok := err.(*CallError)
			if !ok || ce.Kind != c.kind || !strings.Contains(ce.Msg, c.msg) {
				t.Fatalf("got %#v, want kind %d containing %q", err, c.kind, c.msg)
			}
			if inst.Dead() != c.dead {
				t.Fatalf("dead = %v, want %v", inst.Dead(), c.dead)
			}
		})
	}
}

func TestInputCap(t *testing.T) {
	e := NewEngineWithCache(testbuild.Cache())
	m, err := e.Compile(context.Background(), Config{Name: "multi", Wasm: testbuild.Bytes(t, multi), MaxInput: 100,
		Config: map[string]string{"behave": "echo"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	inst, err := m.Instantiate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = inst.Call("decide", make([]byte, 101))
	if ce, ok := err.(*CallError); !ok || ce.Kind != KindInput {
		t.Fatalf("got %v", err)
	}
	if out, err := inst.Call("decide", []byte("fine")); err != nil || string(out) != "fine" {
		t.Fatalf("after oversized input: %q %v", out, err)
	}
}

func TestBadImports(t *testing.T) {
	// (module (import "extism:host/user" "lookup" (func)) (import "extism:host/env" "nope" (func)))
	wasm := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 4, 1, 0x60, 0, 0, // type section: () -> ()
		2, 50, 2,
		16, 'e', 'x', 't', 'i', 's', 'm', ':', 'h', 'o', 's', 't', '/', 'u', 's', 'e', 'r', 6, 'l', 'o', 'o', 'k', 'u', 'p', 0, 0,
		15, 'e', 'x', 't', 'i', 's', 'm', ':', 'h', 'o', 's', 't', '/', 'e', 'n', 'v', 4, 'n', 'o', 'p', 'e', 0, 0,
	}
	e := NewEngineWithCache(testbuild.Cache())
	_, err := e.Compile(context.Background(), Config{Name: "bad", Wasm: wasm})
	if err == nil || !strings.Contains(err.Error(), "extism:host/user.lookup") || !strings.Contains(err.Error(), "extism:host/env.nope") {
		t.Fatalf("got %v", err)
	}
}

func BenchmarkCall(b *testing.B) {
	m := compileMulti(b, "ok", time.Second)
	inst, err := m.Instantiate(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer inst.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inst.Call("decide", []byte(req)); err != nil {
			b.Fatal(err)
		}
	}
}
