package policy

import (
	"errors"
	"sync"
)

// Plugin is one plugin's describe, validate and decide as functions of its
// own, rather than the functions registered with DescribeFunc, Validate
// and Handle, which are one per program. A host uses it to run plugins
// written with this package in its own process (wasmgate's native engine,
// docs/plugins.md#native, for its built-in plugins and for an embedding
// program's own, docs/embedding.md#native-plugins); the methods behave
// exactly as the exports of the same plugin built for wasm, which Serve
// makes of it.
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

// Serve makes the Plugin that build returns from the plugin's config (the
// manifest's [plugins.config] table as JSON, as Config reads it) this
// program's plugin: its Describe, Validate and Decide serve the describe,
// validate and decide exports, as DescribeFunc, Validate and Handle would
// register them. Call it from init. build runs once, at the first of those
// calls; a nil Plugin fails validate and denies every request.
//
// It lets one package be both a wasm plugin (a main package calling
// Serve(New)) and a native one (New handed to a host that runs Go plugins
// in its own process, docs/embedding.md#native-plugins), from the same
// constructor.
func Serve(build func(config []byte) *Plugin) {
	p := sync.OnceValue(func() *Plugin { return build(configJSON()) })
	DescribeFunc(func() Description {
		if pl := p(); pl != nil && pl.Describe != nil {
			return pl.Describe()
		}
		return Description{}
	})
	Validate(func() error {
		pl := p()
		switch {
		case pl == nil:
			return errServeNil
		case pl.Validate != nil:
			return pl.Validate()
		}
		return nil
	})
	Handle(func(r Request) Verdict {
		pl := p()
		switch {
		case pl == nil:
			return Deny(errServeNil.Error())
		case pl.Decide == nil:
			return Deny(errServeNoDecide.Error())
		}
		return pl.Decide(r)
	})
}

var (
	errServeNil      = errors.New("policy: Serve's build returned no plugin")
	errServeNoDecide = errors.New("policy: the plugin Serve built has no Decide")
)
