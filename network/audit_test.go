package network

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

type explained struct {
	name string
	v    Verdict
	err  error
	n    *int
}

func (e explained) Decide(ctx context.Context, r *Request) (Verdict, error) {
	d, err := e.DecideExplain(ctx, r)
	return d.Verdict, err
}

func (e explained) DecideExplain(ctx context.Context, r *Request) (Decision, error) {
	if e.n != nil {
		*e.n++
	}
	return Decision{Verdict: e.v, Plugin: e.name}, e.err
}

// TestAll: the chain rules with policies for plugins: any deny (or error,
// or an unknown verdict) wins and stops, the first allow is reported,
// all abstaining abstains (a deny for Default).
func TestAll(t *testing.T) {
	allow := func(n string) explained { return explained{name: n, v: policy.Allow("ok " + n)} }
	deny := func(n string) explained { return explained{name: n, v: policy.Deny("no " + n)} }
	abstain := explained{name: "a", v: Verdict{Verdict: policy.ActionAbstain}}
	boom := errors.New("boom")
	var after int
	counted := explained{name: "after", v: policy.Allow(""), n: &after}
	for _, c := range []struct {
		name   string
		ps     []Policy
		want   policy.Action
		plugin string
		err    error
	}{
		{"first allow reported", []Policy{abstain, allow("x"), allow("y")}, policy.ActionAllow, "x", nil},
		{"deny after allow wins", []Policy{allow("x"), deny("d"), counted}, policy.ActionDeny, "d", nil},
		{"all abstain", []Policy{abstain, abstain}, policy.ActionAbstain, "", nil},
		{"none", nil, policy.ActionAbstain, "", nil},
		{"error denies", []Policy{allow("x"), explained{name: "e", err: boom}, counted}, policy.ActionDeny, "e", boom},
		{"unknown verdict denies", []Policy{explained{name: "u", v: Verdict{Verdict: "maybe"}}, counted}, policy.ActionDeny, "u", nil},
		{"plain Policy", []Policy{PolicyFunc(func(context.Context, *Request) (Verdict, error) { return policy.Allow(""), nil })}, policy.ActionAllow, "", nil},
	} {
		after = 0
		d, err := All(c.ps...).(Explainer).DecideExplain(context.Background(), &Request{Op: policy.OpTCPConnect})
		if d.Verdict.Verdict != c.want || d.Plugin != c.plugin || !errors.Is(err, c.err) || after != 0 {
			t.Errorf("%s: %+v, %v (policies after a deny asked %d times); want %s by %q, %v", c.name, d, err, after, c.want, c.plugin, c.err)
		}
	}
	// Through Default: an abstain is a deny, and a Go policy in front of
	// another decides first.
	d := &Default{Network: &Simulated{}, Policy: All(deny("go"), allow("chain"))}
	s, _ := d.Socket(context.Background(), TCP, IPv4)
	var de *DeniedError
	if err := s.Connect(context.Background(), netip.MustParseAddrPort("192.0.2.1:80")); !errors.As(err, &de) || de.Plugin != "go" {
		t.Errorf("connect: %v, want denied by the Go policy", err)
	}
	d = &Default{Network: &Simulated{}, Policy: All(abstain)}
	s, _ = d.Socket(context.Background(), TCP, IPv4)
	if err := s.Connect(context.Background(), netip.MustParseAddrPort("192.0.2.1:80")); !errors.As(err, &de) {
		t.Errorf("connect with every policy abstaining: %v, want denied", err)
	}
}

// TestAudited: one record per decision in the audit format, allow only for
// an allow without error; errors and panics are recorded as denies with
// the reason, and the decision still reaches the caller.
func TestAudited(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, nil))
	req := &Request{Op: policy.OpTCPConnect, Proto: "tcp", Guest: "g", Addr: netip.MustParseAddr("192.0.2.1"), Port: 443, Names: []string{"x.test"}}
	for _, c := range []struct {
		p               Policy
		verdict, reason string
		plugin          string
	}{
		{explained{name: "p", v: policy.Allow("fine")}, "allow", "fine", "p"},
		{explained{name: "p", v: policy.Deny("nope")}, "deny", "nope", "p"},
		{explained{name: "p", v: policy.Allow("x"), err: errors.New("broke")}, "deny", "broke", "p"},
		{PolicyFunc(func(context.Context, *Request) (Verdict, error) { panic("bad") }), "deny", "policy panicked: bad", ""},
	} {
		buf.Reset()
		d, err := Audited(c.p, l).(Explainer).DecideExplain(context.Background(), req)
		if (c.verdict == "allow") != (d.Allowed() && err == nil) {
			t.Errorf("%s: decision %+v, %v", c.reason, d, err)
		}
		var rec map[string]any
		if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || strings.Count(buf.String(), "\n") != 1 {
			t.Fatalf("record %q: %v", buf.String(), err)
		}
		keys := make([]string, 0, len(rec))
		for k := range rec {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := []string{"addr", "cached", "duration_us", "guest", "level", "msg", "names", "op", "plugin", "port", "proto", "reason", "time", "verdict"}
		if !slices.Equal(keys, want) || rec["msg"] != "decision" || rec["verdict"] != c.verdict || rec["reason"] != c.reason ||
			rec["plugin"] != c.plugin || rec["addr"] != "192.0.2.1" || rec["port"] != 443.0 || rec["op"] != "tcp.connect" || rec["cached"] != false {
			t.Errorf("record %v; want keys %v, verdict %s, reason %q, plugin %q", rec, want, c.verdict, c.reason, c.plugin)
		}
	}
}
