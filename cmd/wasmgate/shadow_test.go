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

// A reload reloads the --shadow candidate too: a broken candidate is
// refused and the one in force stays; a good one decides every later
// decision. The candidate first denies everything, then allows
// everything, so its tcp.connect records (the first dial, revalidations
// of the open connection by the reloads, the second dial after the
// server dropped the first connection) diverge until the good candidate
// is in force and never after: the first diverges, the last (the second
// dial) does not. Each candidate reload has its audit record, marked
// "shadow": true.
func TestRunShadowReload(t *testing.T) {
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.jsonl")
	srv, r, candidate := startShadowRun(t, dir, "--audit", auditPath)
	r.waitOut(t, "] echo ", 2)

	writeFile(t, candidate, "default = \"sometimes\"\n")
	sighup(t)
	r.waitErr(t, "wasmgate: reload (SIGHUP) of the --shadow candidate "+candidate+" failed; the candidate in force is unchanged:\n"+candidate+":1: ")
	writeFile(t, candidate, "default = \"allow\"\n")
	goodSum := sha256File(t, candidate)
	sighup(t)
	r.waitErr(t, "wasmgate: reloaded the --shadow candidate "+candidate+" (SIGHUP, sha256 "+goodSum+")")
	srv.drop() // the guest dials again
	r.waitOut(t, "] dial ok", 2)
	r.waitFor(t, "echoes on the new connection", func(out, _ string) bool {
		return echoes(out[strings.LastIndex(out, "dial ok"):]) >= 1
	})
	srv.stop.Store(true)
	if code := r.wait(t); code != 0 {
		t.Errorf("exit %d; stdout:\n%s\nstderr:\n%s", code, r.out.String(), r.errb.String())
	}

	var diverged []any
	for _, d := range auditOf(t, auditPath, "decision") {
		if d["op"] == "tcp.connect" && d["shadow"] == true {
			diverged = append(diverged, d["diverged"])
		}
	}
	ok := len(diverged) >= 2 && diverged[0] == true && diverged[len(diverged)-1] == false
	for i := 1; i < len(diverged); i++ {
		if diverged[i] == true && diverged[i-1] == false {
			ok = false // diverged again after the good candidate
		}
	}
	if !ok {
		t.Errorf("shadow tcp.connect records diverged %v, want true... then false... (denied by the first candidate, allowed by the reloaded one)", diverged)
	}
	var shadowReloads []string
	for _, rec := range auditOf(t, auditPath, "reload") {
		if rec["shadow"] == true {
			if rec["manifest"] != candidate {
				t.Errorf("shadow reload record %v names the wrong manifest", rec)
			}
			shadowReloads = append(shadowReloads, fmt.Sprint(rec["result"]))
		}
	}
	if strings.Join(shadowReloads, ",") != "error,ok" {
		t.Errorf("shadow reload records %v, want error then ok", shadowReloads)
	}
}

// With --watch, a change to the --shadow candidate reloads it.
func TestRunShadowWatch(t *testing.T) {
	srv, r, candidate := startShadowRun(t, t.TempDir(), "--watch")
	r.waitOut(t, "] echo ", 1)
	writeFile(t, candidate, "default = \"allow\"\n")
	r.waitErr(t, "wasmgate: reloaded the --shadow candidate "+candidate+" (watch, sha256 "+sha256File(t, candidate)+")")
	srv.stop.Store(true)
	if code := r.wait(t); code != 0 {
		t.Errorf("exit %d; stderr:\n%s", code, r.errb.String())
	}
}

// startShadowRun starts the probe guest echoing to a new echo server,
// allowed by the --policy manifest in dir, with a --shadow candidate
// there that denies everything, and the extra run flags.
func startShadowRun(t *testing.T, dir string, flags ...string) (*echoServer, *bgRun, string) {
	wasm := guestWasm(t, "probe")
	srv := newEchoServer(t)
	manifest, candidate := filepath.Join(dir, "policy.toml"), filepath.Join(dir, "candidate.toml")
	writeFile(t, manifest, echoManifest(srv.port, true, ""))
	writeFile(t, candidate, "default = \"deny\"\n")
	args := append([]string{"--policy", manifest, "--shadow", candidate}, flags...)
	args = append(args, wasm, "echoloop", fmt.Sprintf("127.0.0.1:%d", srv.port), "3")
	return srv, startRun(t, func() { srv.stop.Store(true) }, args...), candidate
}
