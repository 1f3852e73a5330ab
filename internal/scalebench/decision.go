package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wasmgate/wasmgate/internal/decisionbench"
)

// decisionCost is the real run of issue 15: what one policy decision adds
// to a connection through the CLI (BENCHMARKS.md, "The watchdog's ticks").
// Each variant is one `wasmgate run --policy P probe.wasm connectloop ADDR
// N` against the native echo server, a separate process; every round runs
// each variant once, in reverse order every other round; the figure is the
// median over rounds of the paired difference to allow-all of the same
// wasmgate binary, by the probe's median connection (the mean moves by
// ±30 µs between runs on a shared VM) and by its mean.
//
// Variants: allow-all (no plugins), the built-in allowlist uncached on the
// kernel and natively, a chain of three built-ins uncached, and the raw Go
// plugin (plugins/internal/testplugins/raw: the least a Go plugin in wasm
// can do). With a second wasmgate binary (built from another commit),
// allow-all and the allowlist run with it too, alternating.
func decisionCost(args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return fmt.Errorf("decisioncost: want ROUNDS [OTHER_WASMGATE]")
	}
	rounds, err := strconv.Atoi(args[0])
	if err != nil || rounds < 1 {
		return fmt.Errorf("decisioncost: want a positive number of rounds, got %q", args[0])
	}
	dir, err := os.MkdirTemp("", "scalebench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := build(dir, "sockguests/probe"); err != nil {
		return err
	}
	raw := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(dir, "raw.wasm"), "./plugins/internal/testplugins/raw")
	raw.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := raw.CombinedOutput(); err != nil {
		return fmt.Errorf("build the raw plugin: %v\n%s", err, b)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// The echo server stays on one CPU (pinTo, Linux only); wasmgate runs
	// where the kernel puts it, as a user's would.
	echoArgs := []string{"native-echo"}
	if runtime.GOOS == "linux" && runtime.NumCPU() > 1 {
		echoArgs = append(echoArgs, "0")
	}
	echo, err := startServer("native", exec.Command(self, echoArgs...))
	if err != nil {
		return err
	}
	defer echo.stop()
	_, port, _ := strings.Cut(echo.addr, ":")

	manifests := map[string]string{
		"allow-all":        `default = "allow"`,
		"allowlist":        `default = "deny"` + decisionbench.Allowlist,
		"native-allowlist": `default = "deny"` + decisionbench.Native(decisionbench.Allowlist),
		"chain3":           `default = "deny"` + decisionbench.Chain3,
		"raw": `default = "deny"
[[plugins]]
name = "raw"
path = "raw.wasm"
`,
	}
	for name, m := range manifests {
		m = strings.ReplaceAll(m, "PORT", port)
		if err := os.WriteFile(filepath.Join(dir, name+".toml"), []byte(m+"\n"), 0o644); err != nil {
			return err
		}
	}
	type variant struct {
		bin, policy, label string
		median, mean       []float64
	}
	bins := []string{filepath.Join(dir, "wasmgate")}
	if len(args) == 2 {
		other, err := filepath.Abs(args[1])
		if err != nil {
			return err
		}
		bins = append(bins, other)
	}
	var vs []*variant
	for bi, bin := range bins {
		names := []string{"allow-all", "allowlist", "native-allowlist", "chain3", "raw"}
		if bi > 0 {
			names = []string{"allow-all", "allowlist"}
		}
		for _, p := range names {
			label := p
			if bi > 0 {
				label += " (other)"
			}
			vs = append(vs, &variant{bin: bin, policy: p, label: label})
		}
	}
	const conns = 2000
	out := regexp.MustCompile(`ns/conn (\d+) median (\d+)`)
	run := func(v *variant) error {
		cmd := exec.Command(v.bin, "run", "--policy", filepath.Join(dir, v.policy+".toml"),
			filepath.Join(dir, "probe.wasm"), "connectloop", echo.addr, strconv.Itoa(conns))
		cmd.Dir = dir
		b, err := cmd.CombinedOutput()
		m := out.FindSubmatch(b)
		if err != nil || m == nil {
			return fmt.Errorf("%s: %v\n%s", v.label, err, b)
		}
		mean, _ := strconv.ParseFloat(string(m[1]), 64)
		median, _ := strconv.ParseFloat(string(m[2]), 64)
		v.mean, v.median = append(v.mean, mean/1000), append(v.median, median/1000)
		return nil
	}
	fmt.Printf("%d rounds of %d variants, %d connections each, against %s\n", rounds, len(vs), conns, echo.addr)
	start := time.Now()
	// A warm-up run of each, not counted: the first runs fill the
	// compilation cache and the page cache.
	for _, v := range vs {
		if err := run(v); err != nil {
			return err
		}
		v.median, v.mean = v.median[:0], v.mean[:0]
	}
	for r := range rounds {
		order := slices.Clone(vs)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, v := range order {
			if err := run(v); err != nil {
				return err
			}
		}
		// Each round's median connections, in the variants' order: the
		// rounds show how much the machine's speed moves.
		line := fmt.Sprintf("round %2d:", r+1)
		for _, v := range vs {
			line += fmt.Sprintf(" %6.1f", v.median[r])
		}
		fmt.Println(line)
	}
	fmt.Printf("took %v\n\n", time.Since(start).Round(time.Second))
	fmt.Printf("%-26s %14s %14s   %s\n", "µs per connection", "median conn.", "mean", "added (paired, median over rounds; IQR) by median conn. | by mean")
	for _, v := range vs {
		base := vs[0]
		if v.bin != base.bin {
			base = vs[len(vs)-2] // the other binary's allow-all
		}
		line := fmt.Sprintf("%-26s %14.1f %14.1f", v.label, medianOf(v.median), medianOf(v.mean))
		if v != base {
			dm, dq1, dq3 := pairedStats(v.median, base.median)
			em, eq1, eq3 := pairedStats(v.mean, base.mean)
			line += fmt.Sprintf("   %+6.1f (%+.1f to %+.1f) | %+6.1f (%+.1f to %+.1f)", dm, dq1, dq3, em, eq1, eq3)
		}
		fmt.Println(line)
	}
	return nil
}

func medianOf(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// pairedStats returns the median and the quartiles of a[i]-b[i].
func pairedStats(a, b []float64) (median, q1, q3 float64) {
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	slices.Sort(d)
	return d[len(d)/2], d[len(d)/4], d[(3*len(d))/4]
}
