package policy

import (
	"errors"
	"strings"
	"testing"
)

// Serve makes a Plugin the program's exports: built once, from the config,
// at the first call; its parts answer describe, validate and decide.
func TestServe(t *testing.T) {
	withRegistry(t)
	SetConfig([]byte(`{"port":443}`))
	builds := 0
	Serve(func(config []byte) *Plugin {
		builds++
		if string(config) != `{"port":443}` {
			t.Errorf("config %q", config)
		}
		return &Plugin{
			Describe: func() Description { return Description{Name: "served"} },
			Validate: func() error { return errors.New("checked") },
			Decide: func(r Request) Verdict {
				if r.Name == "boom.test" {
					panic("boom")
				}
				return Allow("served " + r.Name)
			},
		}
	})
	if builds != 0 {
		t.Errorf("built %d times before any call", builds)
	}
	if got := string(DescribeJSON()); got != `{"name":"served"}` {
		t.Errorf("describe: %s", got)
	}
	if got := string(ValidateJSON()); got != `{"error":"checked"}` {
		t.Errorf("validate: %s", got)
	}
	if v := Invoke(Request{Op: OpDNSLookup, Name: "A.test."}); v.Reason != "served a.test" {
		t.Errorf("decide: %+v (the request is canonical first)", v)
	}
	if v := Invoke(Request{Op: OpDNSLookup, Name: "boom.test"}); v.Allowed() || !strings.Contains(v.Reason, "panicked: boom") {
		t.Errorf("panic: %+v", v)
	}
	if builds != 1 {
		t.Errorf("built %d times, want once", builds)
	}
}

// A nil Plugin, or one without Decide, fails closed.
func TestServeIncomplete(t *testing.T) {
	withRegistry(t)
	Serve(func([]byte) *Plugin { return nil })
	if got := string(ValidateJSON()); !strings.Contains(got, "returned no plugin") {
		t.Errorf("validate: %s", got)
	}
	if v := Invoke(Request{Op: OpTCPConnect}); v.Allowed() || !strings.Contains(v.Reason, "returned no plugin") {
		t.Errorf("decide: %+v", v)
	}
	if got := string(DescribeJSON()); got != `{}` {
		t.Errorf("describe: %s", got)
	}
	Serve(func([]byte) *Plugin { return &Plugin{} })
	if got := string(ValidateJSON()); got != `{}` {
		t.Errorf("validate: %s", got)
	}
	if v := Invoke(Request{Op: OpTCPConnect}); v.Allowed() || !strings.Contains(v.Reason, "has no Decide") {
		t.Errorf("decide: %+v", v)
	}
}
