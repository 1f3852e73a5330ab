package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
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
		if _, ok := decodeInputFast([]byte(l)); ok {
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
	got, ok := decodeInputFast(line)
	if !ok {
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
