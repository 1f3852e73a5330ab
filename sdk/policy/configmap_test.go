package policy

import (
	"maps"
	"slices"
	"strings"
	"testing"
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

func FuzzConfigMap(f *testing.F) {
	f.Add([]byte(`{"rules":["a"],"t":{"a":"b"},"n":[1,{"x":null}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfigMap(data)
		if err != nil {
			return
		}
		for k := range c.values {
			c.String(k)
			c.Strings(k)
			c.StringTable(k)
		}
		if c.Unused() != nil {
			t.Fatal("Unused after reading every key")
		}
	})
}
