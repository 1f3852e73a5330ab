package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/internal/testenv"
	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

var httpPlugin = sync.OnceValues(func() (string, error) {
	if _, err := exec.LookPath("clang"); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "wasmgate-httpcheck-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "httpcheck.wasm")
	cmd := exec.Command("clang", "--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-Wall", "-Werror",
		"-o", out, filepath.Join("testdata", "httpcheck", "httpcheck.c"))
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("clang: %v\n%s", err, b)
	}
	return out, nil
})

// httpCheckWasm builds testdata/httpcheck (C, clang for wasm32-wasi) once.
func httpCheckWasm(t *testing.T) string {
	t.Helper()
	p, err := httpPlugin()
	var ee *exec.Error
	if errors.As(err, &ee) || errors.Is(err, exec.ErrNotFound) {
		testenv.Missing(t, "clang", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// loopbackOnly makes the plugins' HTTP dialer refuse, and fail the test
// on, any address off loopback: a broken check must not send traffic
// anywhere else.
func loopbackOnly(t *testing.T) {
	old := dialTCP
	dialTCP = func(ctx context.Context, network, addr string) (net.Conn, error) {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil || !ap.Addr().IsLoopback() {
			t.Errorf("dial %s: off loopback", addr)
			return nil, errors.New("test: off loopback")
		}
		return old(ctx, network, addr)
	}
	t.Cleanup(func() { dialTCP = old })
}

// intelServer is a loopback HTTP verdict service: allow for the address
// 93.184.216.34, deny otherwise. It counts the requests it gets.
func intelServer(t *testing.T, delay time.Duration) (*httptest.Server, *atomic.Int32) {
	loopbackOnly(t)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusTemporaryRedirect)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var req struct {
			Op   string `json:"op"`
			Addr string `json:"addr"`
		}
		if r.Method != "POST" || json.Unmarshal(b, &req) != nil || req.Op == "" {
			http.Error(w, "bad request", 400)
			return
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		if req.Addr == "93.184.216.34" {
			fmt.Fprint(w, `{"verdict":"allow","reason":"intel: known good"}`)
			return
		}
		fmt.Fprint(w, `{"verdict":"deny","reason":"intel: unknown host"}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

type auditBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (a *auditBuf) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.b.Write(p)
}

// records returns the audit records with message msg.
func (a *auditBuf) records(t *testing.T, msg string) []map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(a.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// loadHTTP writes a manifest with one httpcheck plugin (extra: more keys
// of its [[plugins]] table; top: more tables) and loads it.
func loadHTTP(t *testing.T, url, extra, top string) (*Policy, *auditBuf, error) {
	t.Helper()
	wasm := httpCheckWasm(t)
	dir := t.TempDir()
	if !strings.Contains(extra, "timeout") {
		extra += "\ntimeout = \"3s\""
	}
	manifest := fmt.Sprintf(`%s
[[plugins]]
name = "intel"
path = %q
%s
[plugins.config]
url = %q
`, top, wasm, extra, url)
	path := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	audit := &auditBuf{}
	p, err := Load(context.Background(), path, Options{CompilationCache: testbuild.Cache(), CacheEntries: -1,
		Audit: slog.New(slog.NewJSONHandler(audit, nil))})
	if err == nil {
		t.Cleanup(func() { p.Close(context.Background()) })
	}
	return p, audit, err
}

func connectTo(addr string) *network.Request {
	return &network.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr(addr), Port: 443, Guest: "app"}
}

// TestPluginHTTPAllowed: a plugin whose manifest allows the loopback
// service (by address, and by a name that resolves to it) gets its
// verdicts from it, on the go-sdk engine that auto picked for it; each
// request gives an audit record naming the address dialled.
func TestPluginHTTPAllowed(t *testing.T) {
	srv, n := intelServer(t, 0)
	port := srv.Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	for _, tc := range []struct{ name, url, extra, top string }{
		{"address", srv.URL + "/verdict", `allowed_hosts = ["127.0.0.1"]
allow_special = ["loopback"]`, ""},
		{"name", fmt.Sprintf("http://Svc.Intel.Test:%d/verdict", port), `allowed_hosts = ["*.intel.test"]
allow_special = ["loopback"]`, `[dns]
hosts = { "svc.intel.test" = ["127.0.0.1"] }`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := n.Load()
			p, audit, err := loadHTTP(t, tc.url, tc.extra, tc.top)
			if err != nil {
				t.Fatal(err)
			}
			e := p.Chain.Engines()[0]
			if e.Engine != EngineExtism || e.Why != "imports extism:host/env.http_request, extism:host/env.http_status_code" {
				t.Errorf("engine %+v", e)
			}
			o := p.Chain.DecideOutcome(context.Background(), connectTo("93.184.216.34"))
			if !o.Verdict.Allowed() || o.Reason != "intel: known good" || o.Plugin != "intel" {
				t.Errorf("known good: %+v", o)
			}
			o = p.Chain.DecideOutcome(context.Background(), connectTo("198.51.100.7"))
			if o.Verdict.Allowed() || o.Reason != "intel: unknown host" {
				t.Errorf("unknown: %+v", o)
			}
			if got := n.Load() - before; got != 2 {
				t.Errorf("service got %d requests, want 2", got)
			}
			recs := audit.records(t, "plugin_http")
			if len(recs) != 2 {
				t.Fatalf("%d plugin_http records, want 2", len(recs))
			}
			for _, r := range recs {
				if r["plugin"] != "intel" || r["verdict"] != "allow" || r["method"] != "POST" ||
					r["addr"] != fmt.Sprintf("127.0.0.1:%d", port) || r["status"] != float64(200) ||
					!strings.HasSuffix(r["url"].(string), "/verdict") {
					t.Errorf("audit record %v", r)
				}
			}
		})
	}
}

// TestPluginHTTPRefused: requests outside what the manifest allows never
// reach the network; the decision fails closed (a deny naming the plugin)
// and the refusal is an audit record.
func TestPluginHTTPRefused(t *testing.T) {
	srv, n := intelServer(t, 0)
	port := srv.Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	for _, tc := range []struct{ name, url, extra, top, why string }{
		// The service is not in allowed_hosts (and there are none by default).
		{"no allowed_hosts", srv.URL, "", "", `host "127.0.0.1" is not in the plugin's allowed_hosts`},
		{"other host", srv.URL, `allowed_hosts = ["inventory.example.com"]`, "", `host "127.0.0.1" is not in the plugin's allowed_hosts`},
		// The name is allowed but resolves to loopback, which the manifest
		// does not opt in to: refused at connect time.
		{"name resolves to loopback", fmt.Sprintf("http://intel.test:%d/", port), `allowed_hosts = ["intel.test"]`,
			`[dns]
hosts = { "intel.test" = ["127.0.0.1"] }`, "intel.test resolves only to refused addresses: 127.0.0.1 (loopback)"},
		// Loopback opted in, but the name also resolves to the metadata
		// address: that one is never dialled.
		{"metadata", "http://meta.test:80/", `allowed_hosts = ["meta.test"]
allow_special = ["loopback"]`, `[dns]
hosts = { "meta.test" = ["169.254.169.254"] }`, "meta.test resolves only to refused addresses: 169.254.169.254 (link-local|metadata)"},
		{"scheme", "file:///etc/passwd", `allowed_hosts = ["127.0.0.1"]
allow_special = ["loopback"]`, "", `scheme "file" is not http or https`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, audit, err := loadHTTP(t, tc.url, tc.extra, tc.top)
			if err != nil {
				t.Fatal(err)
			}
			o := p.Chain.DecideOutcome(context.Background(), connectTo("93.184.216.34"))
			if o.Verdict.Allowed() || !strings.HasPrefix(o.Reason, `plugin "intel" failed: trap: http_request: `) ||
				!strings.Contains(o.Reason, tc.why) {
				t.Errorf("outcome %+v, want a failure because %s", o, tc.why)
			}
			recs := audit.records(t, "plugin_http")
			if len(recs) != 1 || recs[0]["verdict"] != "deny" || !strings.Contains(recs[0]["reason"].(string), tc.why) || recs[0]["plugin"] != "intel" {
				t.Errorf("audit records %v", recs)
			}
			// The instance that trapped was replaced: the next decision
			// fails the same way, not worse.
			o = p.Chain.DecideOutcome(context.Background(), connectTo("93.184.216.34"))
			if o.Verdict.Allowed() || !strings.Contains(o.Reason, tc.why) {
				t.Errorf("second outcome %+v", o)
			}
		})
	}
	if got := n.Load(); got != 0 {
		t.Errorf("the service got %d requests; none was allowed", got)
	}
}

// TestPluginHTTPTimeout: the plugin's timeout bounds its HTTP requests.
func TestPluginHTTPTimeout(t *testing.T) {
	srv, _ := intelServer(t, 5*time.Second)
	p, audit, err := loadHTTP(t, srv.URL, `allowed_hosts = ["127.0.0.1"]
allow_special = ["loopback"]
timeout = "300ms"`, "")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	o := p.Chain.DecideOutcome(context.Background(), connectTo("93.184.216.34"))
	if o.Verdict.Allowed() || o.Reason != `plugin "intel" failed: timeout after 300ms` {
		t.Errorf("outcome %+v", o)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v; the plugin's timeout is 300ms", d)
	}
	if recs := audit.records(t, "plugin_http"); len(recs) != 1 || recs[0]["verdict"] != "deny" {
		t.Errorf("audit records %v", recs)
	}
}

// TestPluginHTTPManifest: special addresses in allowed_hosts are refused
// when the manifest is loaded (wasmgate check), and the kernel, which has
// no http_request, cannot be asked for one.
func TestPluginHTTPManifest(t *testing.T) {
	_, _, err := loadHTTP(t, "http://169.254.169.254/", `allowed_hosts = ["169.254.169.254"]`, "")
	if err == nil || !strings.Contains(err.Error(), "169.254.169.254 is a special address (link-local|metadata)") {
		t.Errorf("metadata address in allowed_hosts: %v", err)
	}
	// Opting in to link-local is not enough for the metadata address.
	_, _, err = loadHTTP(t, "http://169.254.169.254/", `allowed_hosts = ["169.254.169.254"]
allow_special = ["link-local"]`, "")
	if err == nil || !strings.Contains(err.Error(), "unless allow_special lists metadata") {
		t.Errorf("metadata address with link-local: %v", err)
	}
	// On the kernel the same plugin loads but its http_request traps.
	srv, n := intelServer(t, 0)
	p, _, err := loadHTTP(t, srv.URL, `engine = "wasmgate"`, "")
	if err != nil {
		t.Fatal(err)
	}
	if e := p.Chain.Engines()[0]; e.Engine != EngineWasmgate || e.Why != `engine = "wasmgate" in the manifest` {
		t.Errorf("engine %+v", e)
	}
	o := p.Chain.DecideOutcome(context.Background(), connectTo("93.184.216.34"))
	if o.Verdict.Allowed() || !strings.Contains(o.Reason, "wasmgate plugins have no network access") {
		t.Errorf("kernel: %+v", o)
	}
	if n.Load() != 0 {
		t.Error("the kernel made a request")
	}
}

// TestPluginHTTPRedirect: a redirect is checked as the first request is:
// its host against allowed_hosts, its addresses at connect time.
func TestPluginHTTPRedirect(t *testing.T) {
	srv, n := intelServer(t, 0)
	port := srv.Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	for _, tc := range []struct{ to, why string }{
		{fmt.Sprintf("http://localhost:%d/", port), `host "localhost" is not in the plugin's allowed_hosts`},
		{fmt.Sprintf("http://meta.test:%d/", port), "meta.test resolves only to refused addresses: 169.254.169.254 (link-local|metadata)"},
	} {
		before := n.Load()
		p, audit, err := loadHTTP(t, srv.URL+"/redirect?to="+tc.to, `allowed_hosts = ["127.0.0.1", "meta.test"]
allow_special = ["loopback"]`, `[dns]
hosts = { "meta.test" = ["169.254.169.254"] }`)
		if err != nil {
			t.Fatal(err)
		}
		o := p.Chain.DecideOutcome(context.Background(), connectTo("93.184.216.34"))
		if o.Verdict.Allowed() || !strings.Contains(o.Reason, tc.why) {
			t.Errorf("redirect to %s: %+v", tc.to, o)
		}
		if recs := audit.records(t, "plugin_http"); len(recs) != 1 || recs[0]["verdict"] != "deny" {
			t.Errorf("audit records %v", recs)
		}
		if got := n.Load() - before; got != 1 {
			t.Errorf("service got %d requests, want 1 (the redirect)", got)
		}
	}
}
