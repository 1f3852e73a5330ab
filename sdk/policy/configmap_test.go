package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestConfigMap(t *testing.T) {
	c, err := ParseConfigMap([]byte(` {"rules": ["a", "b\u00e9"], "ttl": "1m", "limits": {"x": "1/s"}, "n": 5, "mixed": ["a", 1],
		"obj": {"a": {"b": 1}}, "flag": true, "nil": null, "empty": [], "none": {}} `))
	if err != nil {
		t.Fatal(err)
	}
	if l, ok, err := c.Strings("rules"); !ok || err != nil || !slices.Equal(l, []string{"a", "bé"}) {
		t.Errorf("rules: %q %v %v", l, ok, err)
	}
	if s, ok, err := c.String("ttl"); !ok || err != nil || s != "1m" {
		t.Errorf("ttl: %q %v %v", s, ok, err)
	}
	if m, ok, err := c.StringTable("limits"); !ok || err != nil || !maps.Equal(m, map[string]string{"x": "1/s"}) {
		t.Errorf("limits: %v %v %v", m, ok, err)
	}
	if l, ok, err := c.Strings("empty"); !ok || err != nil || len(l) != 0 {
		t.Errorf("empty: %v %v %v", l, ok, err)
	}
	if _, ok, err := c.String("absent"); ok || err != nil {
		t.Errorf("absent: %v %v", ok, err)
	}
	for key, want := range map[string]string{
		"n":     `"n" must be a string, not a number`,
		"mixed": `"mixed" must be a string, not a list that is not all strings`,
		"obj":   `"obj" must be a string, not a table that is not all strings`,
		"flag":  `"flag" must be a string, not a boolean`,
		"nil":   `"nil" must be a string, not a null`,
		"rules": `"rules" must be a string, not a list of strings`,
	} {
		if _, ok, err := c.String(key); !ok || err == nil || err.Error() != "config: "+want {
			t.Errorf("%s: ok=%v err=%v", key, ok, err)
		}
	}
	if err := c.Unused(); err == nil || err.Error() != `config: unknown key "none"` {
		t.Errorf("Unused: %v", err)
	}
	c.StringTable("none")
	if err := c.Unused(); err != nil {
		t.Errorf("Unused after reading all: %v", err)
	}
}

func TestConfigMapErrors(t *testing.T) {
	for in, want := range map[string]string{
		`[]`:                "want '{'",
		`{"a":"b"} x`:       "trailing data",
		`{"a":"b","a":"c"}`: `duplicate key "a"`,
		`{"a":[1,}`:         "",
		"{\"a\":\"\xff\"}":  "invalid UTF-8",
		`{"a":{"b":"c",}}`:  "",
		`{"a" "b"}`:         "want ':'",
		`{"a":["x" "y"]}`:   "want ',' or ']'",
		`{"a":tru}`:         "want value",
		"{\"a\":\"b\"}\x00": "trailing data",
		`{"x":{"a":"b"`:     "unexpected end",
		`{"x":["a"`:         "unexpected end",
	} {
		_, err := ParseConfigMap([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "config: ") {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
	}
	for _, empty := range []string{"", "  \n"} {
		c, err := ParseConfigMap([]byte(empty))
		if err != nil || c.Unused() != nil {
			t.Errorf("%q: %v", empty, err)
		}
	}
}

// FuzzConfigMap checks ParseConfigMap against encoding/json: it accepts
// only valid JSON objects, reads every string, list of strings and table
// of strings as encoding/json does, rejects a valid object only for a
// duplicate key, and every key it keeps can be read.
func FuzzConfigMap(f *testing.F) {
	f.Add([]byte(`{"rules":["a"],"t":{"a":"b"},"n":[1,{"x":null}]}`))
	f.Add([]byte(`{"s":"\u00e9\ud83d\ude00","l":[],"t":{},"b":true,"x":null,"f":-1.5e3}`))
	f.Add([]byte(`{"a":"b","a":"c"}`))
	f.Add([]byte("{\"a\":\"b\"}\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfigMap(data)
		var ref map[string]any
		refErr := json.Unmarshal(data, &ref)
		blank := len(bytes.TrimLeft(data, " \t\r\n")) == 0
		if err != nil {
			// Stricter than encoding/json where it should be: duplicate
			// keys and invalid UTF-8 (which encoding/json replaces).
			if refErr == nil && ref != nil && !strings.Contains(err.Error(), "duplicate key") && utf8.Valid(data) {
				t.Fatalf("rejects a valid JSON object: %v", err)
			}
			return
		}
		if blank {
			if len(c.values) != 0 {
				t.Fatal("values from blank input")
			}
			return
		}
		if refErr != nil || ref == nil {
			t.Fatalf("accepts what encoding/json rejects (%v)", refErr)
		}
		if len(c.values) != len(ref) {
			t.Fatalf("%d keys, encoding/json has %d", len(c.values), len(ref))
		}
		for k, want := range ref {
			switch want := want.(type) {
			case string:
				if got, ok, err := c.String(k); !ok || err != nil || got != want {
					t.Fatalf("%q: %q %v %v, want %q", k, got, ok, err, want)
				}
			case []any:
				got, ok, err := c.Strings(k)
				allStrings := true
				for _, e := range want {
					_, isString := e.(string)
					allStrings = allStrings && isString
				}
				if !ok || (err == nil) != allStrings {
					t.Fatalf("%q: %v %v %v, want %v", k, got, ok, err, want)
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("%q[%d]: %q, want %q", k, i, got[i], want[i])
					}
				}
			case map[string]any:
				got, ok, err := c.StringTable(k)
				allStrings := true
				for _, e := range want {
					_, isString := e.(string)
					allStrings = allStrings && isString
				}
				if !ok || (err == nil) != allStrings {
					t.Fatalf("%q: %v %v %v, want %v", k, got, ok, err, want)
				}
				if err == nil && len(got) != len(want) {
					t.Fatalf("%q: %d members, want %d", k, len(got), len(want))
				}
				for tk, tv := range got {
					if want[tk] != tv {
						t.Fatalf("%q.%q: %q, want %q", k, tk, tv, want[tk])
					}
				}
			default: // numbers, booleans, null: kept, but not as strings
				if _, ok, err := c.String(k); !ok || err == nil {
					t.Fatalf("%q: a %T read as a string", k, want)
				}
			}
		}
		if c.Unused() != nil {
			t.Fatal("Unused after reading every key")
		}
	})
}

// TestConfigMapDidYouMean: each unknown key is its own line, with the
// nearest key the plugin asked for (present or not) when it is a likely typo.
func TestConfigMapDidYouMean(t *testing.T) {
	c, err := ParseConfigMap([]byte(`{"excpet":["10.0.0.1"],"cache_tll":"1m","rule":[],"zzz":"x","ttl":"1s"}`))
	if err != nil {
		t.Fatal(err)
	}
	c.Strings("except")
	c.String("cache_ttl")
	c.Strings("rules")
	err = c.Unused()
	want := `config: unknown key "cache_tll" (did you mean "cache_ttl"?)
config: unknown key "excpet" (did you mean "except"?)
config: unknown key "rule" (did you mean "rules"?)
config: unknown key "ttl"
config: unknown key "zzz"`
	if err == nil || err.Error() != want {
		t.Errorf("Unused:\n%v\nwant\n%s", err, want)
	}
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Errorf("not a ConfigError: %T", err)
	}
	for _, tc := range []struct{ a, b string }{{"", ""}, {"a", "b"}, {"ab", "ba"}, {"kitten", "sitting"}, {"except", "excpet"}} {
		d := editDistance(tc.a, tc.b)
		if want := map[string]int{"": 0, "a": 1, "ab": 1, "kitten": 3, "except": 1}[tc.a]; d != want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, d, want)
		}
	}
}
