package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// --shadow evaluates a candidate beside the enforced policy and changes
// nothing: here the candidate's only plugin traps on every call (so it
// denies everything), yet the guest's allowed connection echoes as
// before. Each enforced decision has a shadow record ("shadow": true),
// "diverged" where the verdicts differ (the allowed connect) and not
// where they agree (a connect both deny), and the divergence is counted.
func TestRunShadow(t *testing.T) {
	wasm := guestWasm(t, "probe")
	srv := newEchoServer(t)
	dir := t.TempDir()
	manifest, candidate := filepath.Join(dir, "policy.toml"), filepath.Join(dir, "candidate.toml")
	auditPath := filepath.Join(dir, "audit.jsonl")
	writeFile(t, manifest, echoManifest(srv.port, true, ""))
	writeFile(t, candidate, fmt.Sprintf("default = \"allow\"\n[[plugins]]\nname = \"broken\"\npath = %q\n[plugins.config]\nbehave = \"trap\"\n", multiPlugin(t)))
	r := startRun(t, func() { srv.stop.Store(true) }, "--policy", manifest, "--shadow", candidate, "--audit", auditPath, "--metrics", ":0",
		wasm, "dial", "127.0.0.1:9", "--", "echoloop", fmt.Sprintf("127.0.0.1:%d", srv.port), "20")
	r.waitOut(t, "] echo ", 3)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case code := <-r.done:
			t.Fatalf("run ended (exit %d) before the divergence was scraped; stdout:\n%s\nstderr:\n%s", code, r.out.String(), r.errb.String())
		default:
		}
		text := scrapeMetrics(t, r.errb.String())
		if strings.Contains(text, "wasmgate_shadow_divergences_total 1") {
			// Shadow decisions stay out of the decision counts.
			if strings.Contains(text, `plugin="broken"`) {
				t.Errorf("the shadow plugin is in the decision metrics:\n%s", grepWasmgate([]byte(text)))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no divergence counted:\n%s", grepWasmgate([]byte(text)))
		}
	}
	srv.stop.Store(true)
	if code := r.wait(t); code != 1 {
		t.Errorf("exit %d, want 1 (the dial to port 9 is denied); stderr:\n%s", code, r.errb.String())
	}
	if strings.Contains(r.out.String(), "conn error") {
		t.Errorf("the shadow policy affected the guest:\n%s", r.out.String())
	}
	var enforced, shadow []map[string]any
	for _, d := range auditOf(t, auditPath, "decision") {
		if d["op"] != "tcp.connect" {
			continue
		}
		if d["shadow"] == true {
			shadow = append(shadow, d)
		} else if _, ok := d["shadow"]; !ok {
			enforced = append(enforced, d)
		} else {
			t.Errorf("record %v", d)
		}
	}
	if len(enforced) != 2 || len(shadow) != 2 {
		t.Fatalf("%d enforced and %d shadow tcp.connect records, want 2 and 2:\n%v\n%v", len(enforced), len(shadow), enforced, shadow)
	}
	for _, s := range shadow {
		if s["verdict"] != "deny" || s["plugin"] != "broken" || !strings.Contains(fmt.Sprint(s["reason"]), `plugin "broken" failed`) {
			t.Errorf("shadow record %v", s)
		}
		want := s["port"] == float64(srv.port) // the allowed connect
		if s["diverged"] != want {
			t.Errorf("shadow record %v: diverged should be %v", s, want)
		}
	}
	for _, e := range enforced {
		if _, ok := e["diverged"]; ok {
			t.Errorf("enforced record %v has diverged", e)
		}
	}
}
