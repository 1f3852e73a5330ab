package builtin

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	extism "github.com/extism/go-sdk"

	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

var (
	testPluginsOnce sync.Once
	testPluginsDir  string
	testPluginsErr  error
	testPluginBuilt sync.Map // name -> func() error
)

// buildTestPlugin builds testdata/plugins/NAME once per test binary and
// returns the path of the wasm file.
func buildTestPlugin(t *testing.T, name string) string {
	t.Helper()
	return buildPackage(t, name, "./testdata/plugins/"+name)
}

// buildPackage builds the plugin package pkg (relative to the module root)
// once per test binary into NAME.wasm and returns its path.
func buildPackage(t *testing.T, name, pkg string) string {
	t.Helper()
	testPluginsOnce.Do(func() {
		testPluginsDir, testPluginsErr = os.MkdirTemp("", "wasmgate-testplugins-")
	})
	if testPluginsErr != nil {
		t.Fatal(testPluginsErr)
	}
	wasm := filepath.Join(testPluginsDir, name+".wasm")
	build, _ := testPluginBuilt.LoadOrStore(name, sync.OnceValue(func() error {
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w",
			"-o", wasm, pkg)
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %v\n%s", name, err, out)
		}
		return nil
	}))
	if err := build.(func() error)(); err != nil {
		t.Fatal(err)
	}
	return wasm
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testPluginsDir != "" && testPluginsErr == nil {
		os.RemoveAll(testPluginsDir)
	}
	testbuild.Cleanup() // engines_test.go's plugins
	os.Exit(code)
}

// generous is the call timeout (ms) of the plugins that must not time out:
// these tests check what a plugin does, not how fast, and run under -race
// on a busy machine (the huge plugin allocates and returns 64 MiB).
const generous = 120_000

// TestTestdataPlugins checks that each test plugin of testdata/plugins
// misbehaves (or behaves) as its README says, in go-sdk, so that the host's
// tests built on them test what they claim.
func TestTestdataPlugins(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and compiles wasm")
	}
	t.Parallel()
	load := func(t *testing.T, name string, timeoutMs uint64, maxPages uint32, config string) *extism.Plugin {
		wasm, err := os.ReadFile(buildTestPlugin(t, name))
		if err != nil {
			t.Fatal(err)
		}
		m := extism.Manifest{Wasm: []extism.Wasm{extism.WasmData{Data: wasm}}, Timeout: timeoutMs}
		if maxPages > 0 {
			m.Memory = &extism.ManifestMemory{MaxPages: maxPages}
		}
		if config != "" {
			m.Config = map[string]string{"config": config}
		}
		p, err := extism.NewPlugin(t.Context(), m, extism.PluginConfig{
			EnableWasi:    true,
			RuntimeConfig: runtimeConfig(),
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close(t.Context()) })
		return p
	}
	req := []byte(`{"op":"tcp.connect","proto":"tcp","addr":"192.0.2.1","port":443,"names":["api.example.test"]}`)

	t.Run("trap", func(t *testing.T) {
		t.Parallel()
		rc, _, err := load(t, "trap", generous, 0, "").Call("decide", req)
		if err == nil || rc == 0 {
			t.Errorf("rc=%d err=%v", rc, err)
		}
	})
	t.Run("loop", func(t *testing.T) {
		t.Parallel()
		rc, _, err := load(t, "loop", 200, 0, "").Call("decide", req)
		if err == nil || !strings.Contains(err.Error(), "deadline") && !strings.Contains(err.Error(), "exit_code") {
			t.Errorf("rc=%d err=%v", rc, err)
		}
	})
	t.Run("alloc", func(t *testing.T) {
		t.Parallel()
		rc, _, err := load(t, "alloc", generous, 512, "").Call("decide", req) // 32 MiB cap
		if err == nil || rc == 0 {
			t.Errorf("rc=%d err=%v", rc, err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		t.Parallel()
		rc, out, err := load(t, "garbage", generous, 0, "").Call("decide", req)
		if rc != 0 || err != nil || string(out) != "this is not JSON" {
			t.Fatalf("rc=%d err=%v out=%q", rc, err, out)
		}
		if _, err := policy.ParseVerdictJSON(out); err == nil {
			t.Error("host codec accepts garbage")
		}
	})
	t.Run("huge", func(t *testing.T) {
		t.Parallel()
		rc, out, err := load(t, "huge", generous, 0, "").Call("decide", req)
		if rc != 0 || err != nil || len(out) != 64<<20 || !bytes.HasPrefix(out, []byte(`{"verdict":"allow"}`)) {
			t.Fatalf("rc=%d err=%v len=%d", rc, err, len(out))
		}
		if _, err := policy.ParseVerdictJSON(out); err == nil {
			t.Error("host codec accepts the huge output")
		}
	})
	t.Run("emptyobj", func(t *testing.T) {
		t.Parallel()
		rc, out, err := load(t, "emptyobj", generous, 0, "").Call("decide", req)
		if rc != 0 || err != nil || string(out) != "{}" {
			t.Fatalf("rc=%d err=%v out=%q", rc, err, out)
		}
		if _, err := policy.ParseVerdictJSON(out); err == nil {
			t.Error("host codec accepts {}")
		}
	})
	t.Run("rcnoerror", func(t *testing.T) {
		t.Parallel()
		rc, out, err := load(t, "rcnoerror", generous, 0, "").Call("decide", req)
		if rc != 7 || err != nil || !strings.Contains(string(out), `"allow"`) {
			t.Errorf("rc=%d err=%v out=%q", rc, err, out)
		}
	})
	t.Run("jsononly", func(t *testing.T) {
		t.Parallel()
		p := load(t, "jsononly", generous, 0, "")
		for _, tt := range []struct{ req, want string }{
			{string(req), `{"verdict":"allow","reason":"jsononly: https"}`},
			{`{"op":"tcp.connect","proto":"tcp","addr":"192.0.2.1","port":25}`, `{"verdict":"deny","reason":"jsononly: no smtp"}`},
			{`{"op":"udp.send","proto":"udp","addr":"192.0.2.1","port":443}`, `{"verdict":"abstain"}`},
		} {
			rc, out, err := p.Call("decide", []byte(tt.req))
			if rc != 0 || err != nil || string(out) != tt.want {
				t.Errorf("%s: rc=%d err=%v out=%s", tt.req, rc, err, out)
			}
		}
		if p.FunctionExists("describe") || p.FunctionExists("validate") {
			t.Error("jsononly should export decide only")
		}
	})
	t.Run("example", func(t *testing.T) {
		t.Parallel()
		p := load(t, "example", generous, 0, `{"hosts":["*.example.test"]}`)
		var logs []string
		p.SetLogger(func(l extism.LogLevel, msg string) { logs = append(logs, msg) })
		extism.SetLogLevel(extism.LogLevelWarn)
		defer extism.SetLogLevel(extism.LogLevelOff)
		if out := call(t, p, "describe", nil); string(out) != `{"name":"example","version":"1.0.0","ops":["tcp.connect"]}` {
			t.Errorf("describe: %s", out)
		}
		if out := call(t, p, "decide", req); string(out) != `{"verdict":"allow","reason":"example: https to api.example.test"}` {
			t.Errorf("decide 443: %s", out)
		}
		http := bytes.Replace(req, []byte(":443"), []byte(":80"), 1)
		if out := call(t, p, "decide", http); string(out) != `{"verdict":"deny","reason":"example: use https for api.example.test"}` {
			t.Errorf("decide 80: %s", out)
		}
		if len(logs) != 1 || logs[0] != "example: plain http to api.example.test refused" {
			t.Errorf("logs: %q", logs)
		}
	})
}
