package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// plugin is one loaded plugin: its compiled module and a bounded pool of
// instances. An instance is held by exactly one goroutine while it runs;
// a dead instance (trap, timeout, bad output) is dropped and replaced by a
// fresh one on the next call.
type plugin struct {
	name   string
	index  int
	report bool
	ops    uint16 // bit i set: policy.Ops[i] is sent to this plugin
	// portFree bit i set: the plugin declared (describe's
	// "ignores_port") that its verdicts on policy.Ops[i] never depend on
	// the port, so the verdict cache keys them without it.
	portFree uint16
	stateful bool
	desc     description
	mod      module
	pool     *pool[*instance]
	timeout  time.Duration
	// engine is EngineWasmgate, EngineExtism or EngineNative; engineWhy says why
	// (`wasmgate check` prints both).
	engine, engineWhy string
}

// description is the output of a plugin's describe export (docs/plugins.md#4-the-wire-format).
type description struct {
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Ops      []string `json:"ops"`
	Stateful bool     `json:"stateful"`
	Encoding string   `json:"encoding"`
	// IgnoresPort lists the ops whose verdicts never depend on the port
	// (docs/plugins.md §4, "The verdict cache"). Absent: every verdict may.
	IgnoresPort []string `json:"ignores_port"`
}

func opBit(op policy.Op) uint16 {
	for i, o := range policy.Ops {
		if o == op {
			return 1 << i
		}
	}
	return 0
}

const allOps = 1<<10 - 1

func newPlugin(name string, index int, mod module, poolSize int, timeout time.Duration) *plugin {
	return &plugin{name: name, index: index, mod: mod, ops: allOps, timeout: timeout, pool: newPool[*instance](poolSize)}
}

// with runs f on an instance from the pool. f must not keep the output of
// the instance past its return.
func (p *plugin) with(ctx context.Context, f func(*instance) error) error {
	inst, err := p.pool.get(ctx)
	if err != nil {
		return err
	}
	if inst == nil {
		ki, err := p.mod.Instantiate(ctx)
		if err != nil {
			p.pool.put(nil)
			return fmt.Errorf("new instance: %w", err)
		}
		inst = &instance{callable: ki}
	}
	err = f(inst)
	p.pool.put(inst) // closes it if it died
	return err
}

// instance is a pooled plugin instance and the last binary verdict it
// returned, parsed: a plugin mostly repeats its verdicts, and parsing one
// again means sanitising and allocating its reason. The same bytes always
// parse to the same verdict.
type instance struct {
	callable
	lastOut []byte
	lastV   policy.Verdict
}

// decide runs the plugin on a request: through the wasmgate fast path
// (binary request and verdict) when the instance has one and the request
// fits (only on the kernel), otherwise through the Extism decide export
// (JSON). The verdict is
// parsed strictly either way. Any failure is returned as an error; the
// caller turns it into a deny naming the plugin.
func (p *plugin) decide(ctx context.Context, enc *encoding) (policy.Verdict, error) {
	var v policy.Verdict
	err := p.with(ctx, func(inst *instance) error {
		if nd, ok := inst.callable.(nativeDecider); ok {
			var err error
			v, err = nd.DecideRequest(enc.r)
			return err
		}
		if n := inst.FastSize(); n > 0 {
			if bin, ok := enc.Binary(); ok && len(bin) <= n {
				out, err := inst.DecideFast(bin)
				if err != nil {
					return err
				}
				if bytes.Equal(out, inst.lastOut) {
					v = inst.lastV
					return nil
				}
				v, err = policy.ParseVerdictBinary(out)
				if err != nil {
					return fmt.Errorf("malformed verdict: %v", err)
				}
				inst.lastOut = append(inst.lastOut[:0], out...)
				inst.lastV = v
				return nil
			}
		}
		out, err := inst.Call("decide", enc.JSON())
		if err != nil {
			return err
		}
		if len(out) == 0 {
			return errors.New("malformed verdict: no output")
		}
		v, err = policy.ParseVerdictJSON(out)
		if err != nil {
			return fmt.Errorf("malformed verdict: %v", err)
		}
		return nil
	})
	return v, err
}

// describeAndValidate runs the optional exports at load.
func (p *plugin) describeAndValidate(ctx context.Context) []string {
	var problems []string
	err := p.with(ctx, func(inst *instance) error {
		if p.mod.HasExport("describe") {
			out, err := inst.CallTimeout("describe", nil, p.mod.InitTimeout())
			if err != nil {
				problems = append(problems, "describe failed: "+err.Error())
			} else if len(out) > 0 {
				if err := strictJSON(out, &p.desc); err != nil {
					problems = append(problems, "describe returned malformed JSON: "+err.Error())
				}
			}
			if len(p.desc.Ops) > 0 { // absent or empty: every op
				p.ops = 0
				for _, o := range p.desc.Ops {
					b := opBit(policy.Op(o))
					if b == 0 {
						problems = append(problems, fmt.Sprintf("describe lists unknown op %q", o))
					}
					p.ops |= b
				}
			}
			p.stateful = p.desc.Stateful
			for _, o := range p.desc.IgnoresPort {
				b := opBit(policy.Op(o))
				if b == 0 {
					problems = append(problems, fmt.Sprintf("describe lists unknown op %q in ignores_port", o))
				}
				p.portFree |= b
			}
		}
		if inst.Dead() {
			return nil
		}
		if p.mod.HasExport("validate") {
			out, err := inst.CallTimeout("validate", nil, p.mod.InitTimeout())
			if err != nil {
				problems = append(problems, "validate failed: "+err.Error())
				return nil
			}
			if len(out) == 0 {
				return nil
			}
			var res struct {
				Error *string `json:"error"`
			}
			if err := strictJSON(out, &res); err != nil {
				problems = append(problems, "validate returned malformed JSON: "+err.Error())
			} else if res.Error != nil && *res.Error != "" {
				problems = append(problems, validateProblems(*res.Error)...)
			}
		}
		return nil
	})
	if err != nil {
		problems = append(problems, err.Error())
	}
	if !p.mod.HasExport("decide") {
		problems = append(problems, "does not export decide (a plugin must export decide: () -> i32)")
	}
	return problems
}

func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(strings.NewReader(string(b)))
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}

func (p *plugin) close(ctx context.Context) {
	p.pool.close()
	_ = p.mod.Close(ctx)
}

func newLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// maxValidateLines caps the problems taken from one validate error.
const maxValidateLines = 32

// validateProblems turns a plugin's validate error into problems, one per
// line of it (plugins join several problems with newlines), each cleaned
// by the reason sanitiser, at most maxValidateLines of them.
func validateProblems(msg string) []string {
	var out []string
	lines := strings.Split(msg, "\n")
	for n, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if len(out) == maxValidateLines {
			more := 0
			for _, r := range lines[n:] {
				if strings.TrimSpace(r) != "" {
					more++
				}
			}
			out = append(out, fmt.Sprintf("%s… and %d more lines", configRejected, more))
			break
		}
		out = append(out, configRejected+policy.SanitizeReason(l))
	}
	if out == nil {
		out = []string{configRejected + policy.SanitizeReason(msg)}
	}
	return out
}
