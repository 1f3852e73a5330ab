package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// echoServer is a host-side line echo server on 127.0.0.1 for the
// echoloop probe guest: it echoes every line, answers "stop" once told to,
// and can drop its connections.
type echoServer struct {
	port int
	stop atomic.Bool
	// hold, when set, makes the server keep the lines it reads without
	// answering, and signal held for each.
	hold     atomic.Bool
	held     chan struct{}
	accepted atomic.Int32
	mu       sync.Mutex
	conns    []net.Conn
}

func newEchoServer(t *testing.T) *echoServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{port: l.Addr().(*net.TCPAddr).Port, held: make(chan struct{}, 100)}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); s.drop(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if s.hold.Load() {
						s.held <- struct{}{}
						continue
					}
					if s.stop.Load() {
						line = "stop\n"
					}
					if _, err := io.WriteString(c, line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return s
}

// drop closes the server's side of every connection.
func (s *echoServer) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// echoManifest is a policy allowing connects to 127.0.0.1:port when allow,
// otherwise only to another port; top goes after default, extra at the end.
func echoManifest(port int, allow bool, extra string, top ...string) string {
	if !allow {
		port++
	}
	return fmt.Sprintf(`default = "deny"
`+strings.Join(top, "\n")+`

[[plugins]]
name = "egress"
use = "allowlist"
[plugins.config]
rules = ["tcp://127.0.0.1:%d"]
%s`, port, extra)
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// bgRun is `wasmgate run` in the background.
type bgRun struct {
	out, errb syncBuf
	done      chan int
	code      int
	exited    bool
}

// startRun runs `wasmgate run ARGS...` in the background; at the end of
// the test it calls stop (to make the guest exit) and waits for the exit.
func startRun(t *testing.T, stop func(), args ...string) *bgRun {
	t.Helper()
	r := &bgRun{done: make(chan int, 1)}
	go func() { r.done <- run(append([]string{"run"}, args...), strings.NewReader(""), &r.out, &r.errb) }()
	t.Cleanup(func() {
		stop()
		if !r.exited {
			select {
			case <-r.done:
			case <-time.After(time.Minute):
				t.Error("the guest did not exit")
			}
		}
	})
	return r
}

// waitFor waits until cond holds on stdout and stderr.
func (r *bgRun) waitFor(t *testing.T, what string, cond func(out, errOut string) bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		out, errOut := r.out.String(), r.errb.String()
		if cond(out, errOut) {
			return
		}
		if !r.exited {
			select {
			case r.code = <-r.done:
				r.exited = true
				continue // one more look at the final output
			default:
			}
		}
		if r.exited || time.Now().After(deadline) {
			t.Fatalf("no %s (exited %v, code %d); stdout:\n%s\nstderr:\n%s", what, r.exited, r.code, out, errOut)
		}
	}
}

func (r *bgRun) waitOut(t *testing.T, want string, n int) {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("%d× %q on stdout", n, want), func(out, _ string) bool { return strings.Count(out, want) >= n })
}

func (r *bgRun) waitErr(t *testing.T, want string) {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("%q on stderr", want), func(_, errOut string) bool { return strings.Contains(errOut, want) })
}

// wait waits for the exit code.
func (r *bgRun) wait(t *testing.T) int {
	t.Helper()
	if !r.exited {
		select {
		case r.code = <-r.done:
			r.exited = true
		case <-time.After(time.Minute):
			t.Fatalf("the guest did not exit; stdout:\n%s\nstderr:\n%s", r.out.String(), r.errb.String())
		}
	}
	return r.code
}

// echoes counts the "echo N" lines of the guest.
func echoes(out string) int { return strings.Count(out, "] echo ") }

func sighup(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// auditOf returns the audit records of file whose msg is msg.
func auditOf(t *testing.T, file, msg string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

func scrapeMetrics(t *testing.T, errOut string) string {
	t.Helper()
	m := regexp.MustCompile(`metrics at (http://127\.0\.0\.1:\d+/metrics)`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("no metrics address on stderr: %s", errOut)
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A reload that fails (here a TOML syntax error) keeps the policy in
// force: the error names file and line on stderr and in the audit log
// (with the bad file's sha256), the guest keeps echoing, and a new connect
// is still allowed. A good reload after it is audited as ok, with a
// warning for a limit that cannot change live, and both are counted.
func TestRunReloadFailedKeepsPolicy(t *testing.T) {
	wasm := guestWasm(t, "probe")
	srv := newEchoServer(t)
	dir := t.TempDir()
	manifest, auditPath := filepath.Join(dir, "policy.toml"), filepath.Join(dir, "audit.jsonl")
	writeFile(t, manifest, echoManifest(srv.port, true, ""))
	r := startRun(t, func() { srv.stop.Store(true) }, "--policy", manifest, "--audit", auditPath, "--metrics", ":0", wasm,
		"echoloop", fmt.Sprintf("127.0.0.1:%d", srv.port), "3")
	r.waitOut(t, "] echo ", 2)

	writeFile(t, manifest, "# broken\n\ndefault = \"maybe\"\n")
	badSum := sha256File(t, manifest)
	sighup(t)
	r.waitErr(t, "wasmgate: reload (SIGHUP) of "+manifest+" failed; the policy in force is unchanged:\n"+manifest+":3: ")
	n := echoes(r.out.String())
	r.waitFor(t, "echoes after the failed reload", func(out, _ string) bool { return echoes(out) >= n+2 })
	srv.drop() // the guest dials again: still allowed
	r.waitOut(t, "] dial ok", 2)
	r.waitFor(t, "echoes on the new connection", func(out, _ string) bool {
		return echoes(out[strings.LastIndex(out, "dial ok"):]) >= 1
	})

	// A good one now; max_fds cannot change live.
	writeFile(t, manifest, echoManifest(srv.port, true, "\n[limits]\nmax_fds = 100\n"))
	goodSum := sha256File(t, manifest)
	sighup(t)
	r.waitErr(t, "wasmgate: reloaded "+manifest+" (SIGHUP, sha256 "+goodSum+")")
	if !strings.Contains(r.errb.String(), "[limits] max_fds changed, but it is fixed when the guest starts") {
		t.Errorf("no warning about max_fds:\n%s", r.errb.String())
	}
	text := scrapeMetrics(t, r.errb.String())
	for _, want := range []string{`wasmgate_policy_reloads_total{result="error"} 1`, `wasmgate_policy_reloads_total{result="ok"} 1`} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q:\n%s", want, grepWasmgate([]byte(text)))
		}
	}
	srv.stop.Store(true)
	if code := r.wait(t); code != 0 {
		t.Errorf("exit %d; stdout:\n%s\nstderr:\n%s", code, r.out.String(), r.errb.String())
	}
	if strings.Contains(r.out.String(), "dial error") {
		t.Errorf("a dial failed:\n%s", r.out.String())
	}
	recs := auditOf(t, auditPath, "reload")
	if len(recs) != 2 {
		t.Fatalf("%d reload records, want 2: %v", len(recs), recs)
	}
	if recs[0]["result"] != "error" || recs[0]["sha256"] != badSum || recs[0]["manifest"] != manifest ||
		!strings.Contains(fmt.Sprint(recs[0]["error"]), manifest+":3:") {
		t.Errorf("failed reload record %v", recs[0])
	}
	if recs[1]["result"] != "ok" || recs[1]["sha256"] != goodSum || recs[1]["cause"] != "SIGHUP" {
		t.Errorf("reload record %v", recs[1])
	}
}

// --watch reloads when the manifest is replaced the way editors save
// (write a new file, rename it over the old one): a connect denied before
// is allowed after. A broken plugin file is noticed too, and refused.
func TestRunReloadWatch(t *testing.T) {
	wasm := guestWasm(t, "probe")
	srv := newEchoServer(t)
	dir := t.TempDir()
	manifest, plugin := filepath.Join(dir, "policy.toml"), filepath.Join(dir, "ports.wasm")
	multi, err := os.ReadFile(multiPlugin(t)) // abstains on the server's port
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, plugin, string(multi))
	nop := "\n[[plugins]]\nname = \"ports\"\npath = \"ports.wasm\"\n"
	writeFile(t, manifest, echoManifest(srv.port, false, nop))
	r := startRun(t, func() { srv.stop.Store(true) }, "--policy", manifest, "--watch", wasm,
		"echoloop", fmt.Sprintf("127.0.0.1:%d", srv.port), "3000")
	r.waitOut(t, "] dial error: ", 1)
	if !strings.Contains(strings.ToLower(r.out.String()), "permission denied") {
		t.Fatalf("the first dial was not denied:\n%s", r.out.String())
	}

	tmp := filepath.Join(dir, ".policy.toml.swp")
	writeFile(t, tmp, echoManifest(srv.port, true, nop))
	if err := os.Rename(tmp, manifest); err != nil {
		t.Fatal(err)
	}
	r.waitOut(t, "] echo ", 1)
	r.waitErr(t, "wasmgate: reloaded "+manifest+" (watch, sha256 ")

	// The plugin file changes into something that is not a plugin.
	writeFile(t, plugin, string(trapWasm))
	r.waitErr(t, "wasmgate: reload (watch) of "+manifest+" failed")
	n := echoes(r.out.String())
	r.waitFor(t, "echoes after the failed reload", func(out, _ string) bool { return echoes(out) >= n+2 })
	srv.stop.Store(true)
	if code := r.wait(t); code != 0 {
		t.Errorf("exit %d; stderr:\n%s", code, r.errb.String())
	}
}

// The test: a guest with an open connection keeps echoing until
// the rule allowing it is removed and SIGHUP is sent; then its read, which
// was waiting for the echo, fails with ECONNRESET, and a new connect is
// denied. The reload's audit record counts the revoked socket, which has
// its own record (and the revalidation its deny decision), and the
// metric counts it. Putting the rule back lets the guest connect again.
func TestRunReloadRevokes(t *testing.T) {
	wasm := guestWasm(t, "probe")
	srv := newEchoServer(t)
	dir := t.TempDir()
	manifest, auditPath := filepath.Join(dir, "policy.toml"), filepath.Join(dir, "audit.jsonl")
	writeFile(t, manifest, echoManifest(srv.port, true, ""))
	r := startRun(t, func() { srv.hold.Store(false); srv.stop.Store(true) }, "--policy", manifest, "--audit", auditPath, "--metrics", ":0", wasm,
		"echoloop", fmt.Sprintf("127.0.0.1:%d", srv.port), "100000")
	r.waitOut(t, "] echo ", 3)

	// The guest is now waiting in a read for an echo that does not come.
	srv.hold.Store(true)
	select {
	case <-srv.held:
	case <-time.After(time.Minute):
		t.Fatal("the guest sent nothing")
	}
	writeFile(t, manifest, echoManifest(srv.port, false, ""))
	sum := sha256File(t, manifest)
	sighup(t)
	r.waitOut(t, "] conn error: ", 1)
	r.waitOut(t, "] dial error: ", 1)
	out := r.out.String()
	connErr := out[strings.Index(out, "] conn error: "):]
	connErr = connErr[:strings.Index(connErr, "\n")]
	if !strings.Contains(connErr, "read tcp") || !strings.Contains(strings.ToLower(connErr), "connection reset by peer") {
		t.Errorf("the guest's read failed with %q, want a connection reset", connErr)
	}
	if !strings.Contains(strings.ToLower(out), "connect: permission denied") {
		t.Errorf("the new connect was not denied:\n%s", out)
	}
	r.waitErr(t, fmt.Sprintf("wasmgate: revoked tcp.connect 127.0.0.1:%d, denied: no plugin allowed tcp.connect; manifest default is deny; the guest now gets ECONNRESET", srv.port))
	r.waitErr(t, "; 1 sockets revoked")
	text := scrapeMetrics(t, r.errb.String())
	if !strings.Contains(text, "wasmgate_revoked_sockets_total 1") {
		t.Errorf("scrape lacks the revoked socket:\n%s", grepWasmgate([]byte(text)))
	}
	// The echoes so far, both ways ("ping N\n" is at least 7 bytes).
	for _, dir := range []string{"in", "out"} {
		m := regexp.MustCompile(`wasmgate_bytes_total\{direction="` + dir + `"\} (\d+)`).FindStringSubmatch(text)
		if m == nil || len(m[1]) < 2 {
			t.Errorf("bytes %s: %v, want at least 3 echoes' worth:\n%s", dir, m, grepWasmgate([]byte(text)))
		}
	}

	// The rule back: the guest connects again.
	srv.hold.Store(false)
	writeFile(t, manifest, echoManifest(srv.port, true, ""))
	sighup(t)
	r.waitOut(t, "] dial ok", 2)
	srv.stop.Store(true)
	if code := r.wait(t); code != 0 {
		t.Errorf("exit %d; stderr:\n%s", code, r.errb.String())
	}

	reloads := auditOf(t, auditPath, "reload")
	if len(reloads) != 2 || reloads[0]["result"] != "ok" || reloads[0]["revoked"] != float64(1) || reloads[0]["sha256"] != sum ||
		reloads[1]["revoked"] != float64(0) {
		t.Errorf("reload records %v", reloads)
	}
	revokes := auditOf(t, auditPath, "revoke")
	if len(revokes) != 1 {
		t.Fatalf("revoke records %v, want one", revokes)
	}
	rv := revokes[0]
	if rv["op"] != "tcp.connect" || rv["addr"] != "127.0.0.1" || rv["port"] != float64(srv.port) || rv["errno"] != "ECONNRESET" ||
		rv["proto"] != "tcp" || !strings.Contains(fmt.Sprint(rv["reason"]), "manifest default is deny") {
		t.Errorf("revoke record %v", rv)
	}
	// The revalidation is a decision like any other: allowed at first,
	// denied after the reload.
	var verdicts []string
	for _, d := range auditOf(t, auditPath, "decision") {
		if d["op"] == "tcp.connect" {
			verdicts = append(verdicts, fmt.Sprint(d["verdict"]))
		}
	}
	if len(verdicts) < 3 || verdicts[0] != "allow" || verdicts[1] != "deny" || verdicts[len(verdicts)-1] != "allow" {
		t.Errorf("tcp.connect verdicts %v: want allow (connect), deny (revalidation, then the new connects), allow (after the rule is back)", verdicts)
	}
}

// revoke = false: a reload that denies an open connection leaves it
// open (new connects are still denied).
func TestRunReloadRevokeOff(t *testing.T) {
	wasm := guestWasm(t, "probe")
	srv := newEchoServer(t)
	manifest := filepath.Join(t.TempDir(), "policy.toml")
	writeFile(t, manifest, echoManifest(srv.port, true, "", "revoke = false"))
	r := startRun(t, func() { srv.stop.Store(true) }, "--policy", manifest, wasm,
		"echoloop", fmt.Sprintf("127.0.0.1:%d", srv.port), "1")
	r.waitOut(t, "] echo ", 2)
	writeFile(t, manifest, echoManifest(srv.port, false, "", "revoke = false"))
	sighup(t)
	r.waitErr(t, "; 0 sockets revoked")
	n := echoes(r.out.String())
	r.waitFor(t, "echoes after the reload", func(out, _ string) bool { return echoes(out) >= n+2 })
	srv.drop()
	if code := r.wait(t); code != 1 {
		t.Errorf("exit %d, want 1 (the new dial is denied)", code)
	}
	if !strings.Contains(strings.ToLower(r.out.String()), "connect: permission denied") {
		t.Errorf("the new connect was not denied:\n%s", r.out.String())
	}
}

// TestRunWatchOCIRefused: --watch of an oci:// policy is a usage error
// that says why (a policy pinned by digest never changes).
func TestRunWatchOCIRefused(t *testing.T) {
	code, _, errOut := runCLI(t, "", "run", "--watch", "--policy", "oci://127.0.0.1:1/p@sha256:"+strings.Repeat("0", 64), "x.wasm")
	if code != exitUsage || !strings.Contains(errOut, "pinned by its digest") {
		t.Errorf("exit %d, stderr %q; want a usage error about the pinned digest", code, errOut)
	}
}
