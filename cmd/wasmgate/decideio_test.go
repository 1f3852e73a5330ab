package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/wasmgate/wasmgate/plugins"
)

// jsonInput decodes line as `wasmgate decide` did before decodeInputFast.
func jsonInput(line []byte) (input, error) {
	var in input
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, err
	}
	if dec.More() {
		return in, errors.New("more")
	}
	return in, nil
}

var decideLines = []string{
	`{"op":"connect","proto":"tcp","addr":"93.184.216.34","port":443}`,
	` { "op" : "resolve" , "host" : "example.com" } `,
	`{"op":"accept","proto":"tcp","addr":"10.0.0.1","port":40000,"local":"0.0.0.0:8080"}`,
	`{}`,
	`{"op":"connect","port":-1}`,
	`{"op":"connect","port":0}`,
	`{"op":"connect","port":00}`,
	`{"op":"connect","port":1.5}`,
	`{"op":"connect","port":1e3}`,
	`{"op":"connect","port":"443"}`,
	`{"op":"connect","port":99999999999999999999}`,
	`{"op":"connect","port":123456789012345678}`,
	`{"op":"connect","port":null}`,
	`{"op":"connect","addr":null}`,
	`{"op":"connect","op":"send"}`,
	`{"OP":"connect"}`,
	`{"op":"connect","extra":1}`,
	`{"op":"conn\u0065ct"}`,
	`{"op":"conn\"ect"}`,
	`{"op":"é"}`,
	`{"op":"connect"} {"op":"send"}`,
	`{"op":"connect"}x`,
	`{"op":"connect",}`,
	`{"op" "connect"}`,
	`{"op":"connect"`,
	`[1]`,
	`"op"`,
	`{"op":"connect","proto":tcp}`,
	"{\"op\":\"a\tb\"}",
	`{"op":"connect","port":-0}`,
	`{"op":"connect","port":- 1}`,
}

// TestDecideCodecSameAsJSON: a line the fast decoder accepts decodes as
// encoding/json decodes it, and appendOutput writes what json.Encoder
// writes.
func TestDecideCodecSameAsJSON(t *testing.T) {
	fastOK := 0
	for _, l := range decideLines {
		checkFastInput(t, []byte(l))
		if decodeInputFast([]byte(l), new(input)) {
			fastOK++
		}
	}
	if fastOK < 5 {
		t.Errorf("the fast decoder took only %d lines", fastOK)
	}
	s := func(v string) *string { return &v }
	n := func(v int64) *int64 { return &v }
	for _, o := range []output{
		{Op: "connect", Proto: "tcp", Addr: s("1.2.3.4"), Port: n(443), Verdict: "allow", Plugin: s(""), Reason: "no plugin decided; manifest default is allow"},
		{Op: "resolve", Host: s("ex<am>&ple.com"), Verdict: "deny", Addrs: &[]string{}, Dropped: &[]string{"::1", "10.0.0.1"}, Reason: "quote \" backslash \\ tab \t nl \n ctl \x01 \u2028 é \xff end"},
		{Op: "accept", Proto: "tcp", Addr: s("::1"), Port: n(-7), Local: s("[::]:80"), Verdict: "would_deny", Addrs: new([]string), Plugin: s("p"), Reason: ""},
		{},
	} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(&o); err != nil {
			t.Fatal(err)
		}
		if got := appendOutput(nil, &o); string(got) != want.String() {
			t.Errorf("appendOutput:\n got %s\nwant %s", got, want.String())
		}
	}
}

func checkFastInput(t *testing.T, line []byte) {
	t.Helper()
	// Into a used input: what decide does line after line.
	got := &input{Op: "x", Host: new(string), Port: new(int64), port: 9, addr: "a"}
	if !decodeInputFast(line, got) {
		return
	}
	want, err := jsonInput(line)
	if err != nil {
		t.Fatalf("%q: the fast decoder took a line encoding/json rejects (%v)", line, err)
	}
	g := *got
	g.port, g.host, g.addr, g.local = 0, "", "", "" // storage behind the pointers
	if !reflect.DeepEqual(g, want) {
		t.Fatalf("%q: fast %+v, encoding/json %+v", line, got, want)
	}
}

func FuzzDecideInput(f *testing.F) {
	for _, l := range decideLines {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) { checkFastInput(t, line) })
}

// FuzzDecideLine runs each line through two deciders on the same manifest,
// one decoding with the fast decoder and one with encoding/json only, and
// wants the same output line (or the same error) from both, and the output
// line to be what json.Encoder writes for it.
func FuzzDecideLine(f *testing.F) {
	for _, l := range decideLines {
		f.Add([]byte(l))
	}
	for _, l := range []string{
		`{"op":"connect","proto":"udp","addr":"::ffff:10.0.0.1","port":53}`,
		`{"op":"send","proto":"udp","addr":"fe80::1%eth0","port":53}`,
		`{"op":"bind","proto":"tcp","addr":"0.0.0.0","port":8080}`,
		`{"op":"listen","proto":"tcp","addr":"0.0.0.0","port":8080}`,
		`{"op":"recv","proto":"udp","addr":"10.0.0.2","port":5353,"local":"0.0.0.0:5353"}`,
		`{"op":"connect","proto":"tcp","addr":"1.2.3.4.5","port":1}`,
		`{"op":"connect","proto":"tcp","addr":"1.2.3.4","port":70000}`,
	} {
		f.Add([]byte(l))
	}
	dir := f.TempDir()
	manifest := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(manifest, []byte("default = \"deny\"\n[[plugins]]\nname = \"egress\"\nuse = \"allowlist\"\n[plugins.config]\nrules = [\"tcp://10.0.0.0/8\", \"bind tcp://0.0.0.0:8080\"]\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	p, err := loadPolicy(ctx, manifest, plugins.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { p.Close(ctx) })
	fast, slow := newDecider(p), newDecider(p)
	slow.jsonOnly = true
	f.Fuzz(func(t *testing.T, line []byte) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || bytes.IndexByte(line, '\n') >= 0 {
			return // decide never sees these as one line
		}
		var got, want []byte
		o, err := fast.line(ctx, line)
		if err == nil {
			got = appendOutput(nil, o)
			var enc bytes.Buffer
			e := json.NewEncoder(&enc)
			e.SetEscapeHTML(false)
			if err := e.Encode(o); err != nil {
				t.Fatal(err)
			}
			if string(got) != enc.String() {
				t.Fatalf("%q: appendOutput\n%s json.Encoder\n%s", line, got, enc.Bytes())
			}
		} else {
			got = []byte("error: " + err.Error())
		}
		if o, err := slow.line(ctx, line); err == nil {
			want = appendOutput(nil, o)
		} else {
			want = []byte("error: " + err.Error())
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%q:\n fast %s\n json %s", line, got, want)
		}
	})
}
