//go:build !wasip1

package policy

import "errors"

// Plugin is one plugin's describe, validate and decide as functions of its
// own, rather than the functions registered with DescribeFunc, Validate
// and Handle, which are one per program. A host uses it to run plugins
// written with this package in its own process (wasmgate's native engine
// for its built-in plugins, docs/plugins.md#8-engines); the methods behave
// exactly as the exports of the same plugin built for wasm.
type Plugin struct {
	Describe func() Description // nil: no description
	Validate func() error       // nil: every config is accepted
	Decide   func(Request) Verdict
}

// Invoke decides req as the decide export does (see the package's Invoke):
// the request is made canonical, a panic in Decide becomes a deny, and an
// invalid verdict becomes a deny.
func (p *Plugin) Invoke(req Request) Verdict { return invoke(p.Decide, &req, false) }

// DescribeJSON is the output of the describe export (see DescribeJSON).
// A panic in Describe is returned as an error.
func (p *Plugin) DescribeJSON() (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, errors.New("describe panicked: "+panicText(r))
		}
	}()
	return describeJSON(p.Describe), nil
}

// ValidateJSON is the output of the validate export (see ValidateJSON).
func (p *Plugin) ValidateJSON() []byte { return validateJSON(p.Validate) }
