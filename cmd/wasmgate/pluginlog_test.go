package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	multiOnce sync.Once
	multiPath string
	multiErr  error
)

// multiPlugin builds the kernel test plugin (plugins/internal/testplugins/multi)
// once per test binary and returns its path.
func multiPlugin(t *testing.T) string {
	t.Helper()
	multiOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wasmgate-cli-multi")
		if err != nil {
			multiErr = err
			return
		}
		multiPath = filepath.Join(dir, "multi.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", multiPath, "./plugins/internal/testplugins/multi")
		cmd.Dir = filepath.Join("..", "..")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			multiErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if multiErr != nil {
		t.Fatal(multiErr)
	}
	return multiPath
}

// logManifest writes a manifest whose only plugin, "talker", is multi
// logging at every level plus lines more warnings per decide.
// multi imports http_request (its "http" behaviour), so auto would put it
// on go-sdk: these tests pin the kernel unless they say otherwise.
func logManifest(t *testing.T, lines int) string { return logManifestOn(t, lines, "wasmgate") }

// logManifestOn is logManifest with the plugin on engine.
func logManifestOn(t *testing.T, lines int, engine string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.toml")
	text := fmt.Sprintf("[[plugins]]\nname = \"talker\"\npath = %q\nengine = %q\n[plugins.config]\nbehave = \"log\"\nlines = \"%d\"\n", multiPlugin(t), engine, lines)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const connectLine = `{"op":"connect","proto":"tcp","addr":"192.0.2.1","port":443}` + "\n"

// TestPluginLogs: a plugin's log_* calls and its stdout/stderr reach
// stderr as lines naming the plugin at their level, filtered by
// --log-level (default warn), in decide, check, test and run; in decide
// on both engines (docs/plugins.md#8-engines).
func TestPluginLogs(t *testing.T) {
	manifest := logManifest(t, 0)
	onSDK := logManifestOn(t, 0, "extism")
	all := []string{
		`wasmgate: plugin "talker": warn: validate called`,
		`wasmgate: plugin "talker": debug: debug line`,
		`wasmgate: plugin "talker": info: info line`,
		`wasmgate: plugin "talker": warn: warn line`,
		`wasmgate: plugin "talker": error: error line?[31m`, // ESC cleaned
		`wasmgate: plugin "talker": info: stdout line`,
		`wasmgate: plugin "talker": warn: stderr line`,
	}
	shown := func(min slog.Level) []string {
		var want []string
		for _, l := range all {
			var lv slog.Level
			lv.UnmarshalText([]byte(strings.Split(l, ": ")[2]))
			if lv >= min {
				want = append(want, l)
			}
		}
		return want
	}
	for _, c := range []struct {
		level string
		min   slog.Level
	}{{"", slog.LevelWarn}, {"debug", slog.LevelDebug}, {"info", slog.LevelInfo}, {"warn", slog.LevelWarn}, {"error", slog.LevelError}} {
		for _, m := range []struct{ engine, path string }{{"", manifest}, {"extism/", onSDK}} {
			t.Run("decide/"+m.engine+c.level, func(t *testing.T) { decideLogs(t, m.path, c.level, shown(c.min)) })
		}
	}
	t.Run("check", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"check", manifest}, nil, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		if stderr.String() != all[0]+"\n" {
			t.Errorf("stderr %q", stderr.String())
		}
		stderr.Reset()
		run([]string{"check", "--log-level", "error", manifest}, nil, &stdout, &stderr)
		if stderr.Len() != 0 {
			t.Errorf("--log-level error: stderr %q", stderr.String())
		}
	})
	t.Run("test", func(t *testing.T) {
		cases := filepath.Join(t.TempDir(), "cases.jsonl")
		os.WriteFile(cases, []byte(strings.TrimSpace(connectLine)[:len(connectLine)-2]+`,"expect":"allow"}`+"\n"), 0o644)
		var stdout, stderr bytes.Buffer
		if code := run([]string{"test", "--log-level", "info", "--policy", manifest, cases}, nil, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
		}
		if want := strings.Join(shown(slog.LevelInfo), "\n") + "\n"; stderr.String() != want {
			t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), want)
		}
	})
	t.Run("run", func(t *testing.T) {
		// The guest makes no network call; the plugin's validate logs
		// while the manifest is loaded.
		code, _, errOut := runCLI(t, "", "run", "--log-level", "warn", "--policy", manifest, guestWasm(t, "hello"))
		if code != 0 || !strings.Contains(errOut, all[0]+"\n") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("bad level", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"decide", "--log-level", "loud", "--policy", manifest}, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "want debug, info, warn or error") {
			t.Errorf("exit %d, stderr %q", code, stderr.String())
		}
	})
}

// decideLogs runs decide on manifest at level and wants exactly the plugin
// lines want on stderr.
func decideLogs(t *testing.T, manifest, level string, want []string) {
	t.Helper()
	args := []string{"decide", "--policy", manifest}
	if level != "" {
		args = append(args, "--log-level", level)
	}
	var stdout, stderr bytes.Buffer
	if code := run(args, strings.NewReader(connectLine), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), `"verdict":"allow","plugin":"talker","reason":"logged"`) {
		t.Errorf("stdout %s", stdout.String())
	}
	got := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if stderr.Len() == 0 {
		got = nil
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), strings.Join(want, "\n"))
	}
}

var droppedRE = regexp.MustCompile(`wasmgate: plugin "talker": ([0-9]+) log lines dropped`)

// TestPluginLogsFlood: a plugin logging in a loop gets logBurst lines
// through, then the rest is dropped and counted.
func TestPluginLogsFlood(t *testing.T) {
	const loop = 1000
	manifest := logManifest(t, loop)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"decide", "--policy", manifest}, strings.NewReader(connectLine), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	shown, dropped := 0, 0
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if strings.Contains(l, ": warn: loop ") {
			shown++
		}
		if m := droppedRE.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			dropped += n
		}
	}
	// Default level warn: validate, warn, error and stderr lines, then
	// the loop; a few more may pass as tokens refill during the call.
	total := 4 + loop
	if shown+4 > logBurst+5 || dropped == 0 || shown+4+dropped != total {
		t.Errorf("%d loop lines shown, %d dropped (of %d lines)\n%s", shown, dropped, total, stderr.String())
	}
	if len(stderr.String()) > 10<<10 {
		t.Errorf("%d bytes on stderr", stderr.Len())
	}
}

// TestPluginLogsRate checks the per-plugin token bucket on a fake clock.
func TestPluginLogsRate(t *testing.T) {
	var buf bytes.Buffer
	p := newPluginLogs(&buf, slog.LevelDebug)
	now := time.Unix(0, 0)
	p.now = func() time.Time { return now }
	l := p.Logger()
	for i := range logBurst + 20 {
		l.Warn("plugin log", "plugin", "a", "msg", fmt.Sprint("a", i))
	}
	l.Warn("plugin log", "plugin", "b", "msg", "b is not limited by a")
	now = now.Add(time.Second) // logRate more lines
	for i := range int(logRate) + 1 {
		l.Info("plugin log", "plugin", "a", "msg", fmt.Sprint("later", i))
	}
	p.Close()
	out := buf.String()
	for _, want := range []string{
		fmt.Sprintf("warn: a%d\n", logBurst-1),
		`wasmgate: plugin "b": warn: b is not limited by a` + "\n",
		`wasmgate: plugin "a": 20 log lines dropped (over 10 per second)` + "\nwasmgate: plugin \"a\": info: later0\n",
		fmt.Sprintf("info: later%d\n", int(logRate)-1),
		`wasmgate: plugin "a": 1 log lines dropped`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, fmt.Sprintf("warn: a%d\n", logBurst)) {
		t.Errorf("more than the burst got through:\n%s", out)
	}
}
