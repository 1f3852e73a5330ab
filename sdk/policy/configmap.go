package policy

import (
	"errors"
	"slices"
	"strconv"
)

// ConfigMap is the plugin config read without encoding/json, for plugins
// whose config is a flat table of strings, lists of strings and tables of
// strings (all the built-ins). encoding/json and the reflection it needs add
// about 1 MB to a plugin; Config is simpler to use, ConfigMap keeps the
// plugin small. A ConfigMap remembers which keys were read, so that Unused
// can report typos.
type ConfigMap struct {
	values map[string]configValue
	read   map[string]bool
	asked  []string // every key an accessor asked for, present or not: the known keys
}

type configValue struct {
	str   *string
	list  []string
	table map[string]string
	kind  string // "string", "list of strings", "table of strings", or what else it is
}

// LoadConfigMap decodes the plugin's config (see Config). A missing config
// is an empty map. Members whose values have other shapes (numbers, nested
// tables, mixed lists) are kept as such and reported by the accessors.
func LoadConfigMap() (*ConfigMap, error) {
	return ParseConfigMap(configJSON())
}

// ParseConfigMap is LoadConfigMap on the given JSON (empty = no config).
func ParseConfigMap(data []byte) (*ConfigMap, error) {
	c := &ConfigMap{values: map[string]configValue{}, read: map[string]bool{}}
	p := parser{data: data}
	if p.ws(); p.i == len(p.data) { // not peek() == 0: a NUL byte is not the end
		return c, nil
	}
	if err := p.expect('{', "'{'"); err != nil {
		return nil, &ConfigError{Err: err}
	}
	for n := 0; ; n++ {
		key, at, done, err := p.member(n)
		if err != nil {
			return nil, &ConfigError{Err: err}
		}
		if done {
			break
		}
		k := string(key)
		if _, dup := c.values[k]; dup {
			return nil, &ConfigError{Err: wireErr(at, "duplicate key "+strconv.Quote(k))}
		}
		v, err := p.configValue()
		if err != nil {
			return nil, &ConfigError{Err: err}
		}
		c.values[k] = v
	}
	if err := p.end(); err != nil {
		return nil, &ConfigError{Err: err}
	}
	return c, nil
}

func (p *parser) configValue() (configValue, error) {
	start := p.i
	switch p.peek() {
	case '"':
		s, err := p.str()
		return configValue{str: &s, kind: "string"}, err
	case '[':
		p.i++
		list := []string{}
		for n := 0; ; n++ {
			c := p.peek()
			if c == ']' {
				p.i++
				return configValue{list: list, kind: "list of strings"}, nil
			}
			if n > 0 {
				if c != ',' {
					return configValue{}, p.unexpected("',' or ']'")
				}
				p.i++
			}
			if p.peek() != '"' {
				p.i = start
				return p.otherValue("list that is not all strings")
			}
			s, err := p.str()
			if err != nil {
				return configValue{}, err
			}
			list = append(list, s)
		}
	case '{':
		p.i++
		table := map[string]string{}
		for n := 0; ; n++ {
			key, _, done, err := p.member(n)
			if err != nil {
				return configValue{}, err
			}
			if done {
				return configValue{table: table, kind: "table of strings"}, nil
			}
			if p.peek() != '"' {
				p.i = start
				return p.otherValue("table that is not all strings")
			}
			s, err := p.str()
			if err != nil {
				return configValue{}, err
			}
			table[string(key)] = s
		}
	case 't', 'f':
		return p.otherValue("boolean")
	case 'n':
		return p.otherValue("null")
	}
	return p.otherValue("number")
}

func (p *parser) otherValue(kind string) (configValue, error) {
	if err := p.skip(1); err != nil {
		return configValue{}, err
	}
	return configValue{kind: kind}, nil
}

func (c *ConfigMap) get(key, want string) (configValue, bool, error) {
	if !slices.Contains(c.asked, key) {
		c.asked = append(c.asked, key)
	}
	v, ok := c.values[key]
	if !ok {
		return v, false, nil
	}
	c.read[key] = true
	if v.kind != want {
		return v, true, &ConfigError{Err: errors.New(strconv.Quote(key) + " must be a " + want + ", not a " + v.kind)}
	}
	return v, true, nil
}

// String returns the string value of key; ok is false if the key is absent.
func (c *ConfigMap) String(key string) (s string, ok bool, err error) {
	v, ok, err := c.get(key, "string")
	if !ok || err != nil {
		return "", ok, err
	}
	return *v.str, true, nil
}

// Strings returns the list-of-strings value of key.
func (c *ConfigMap) Strings(key string) (list []string, ok bool, err error) {
	v, ok, err := c.get(key, "list of strings")
	if !ok || err != nil {
		return nil, ok, err
	}
	return v.list, true, nil
}

// StringTable returns the table-of-strings value of key.
func (c *ConfigMap) StringTable(key string) (table map[string]string, ok bool, err error) {
	v, ok, err := c.get(key, "table of strings")
	if !ok || err != nil {
		return nil, ok, err
	}
	return v.table, true, nil
}

// Unused returns an error naming every key that no accessor has read, so
// that a misspelt key is reported instead of silently ignored: one line per
// key, with the closest key the plugin asked for when one is near ("did you
// mean"). Call it after reading all the keys you know.
func (c *ConfigMap) Unused() error {
	var unused []string
	for k := range c.values {
		if !c.read[k] {
			unused = append(unused, k)
		}
	}
	if unused == nil {
		return nil
	}
	slices.Sort(unused)
	errs := make([]error, len(unused))
	for i, k := range unused {
		msg := "unknown key " + strconv.Quote(k)
		if s := closest(k, c.asked); s != "" {
			msg += " (did you mean " + strconv.Quote(s) + "?)"
		}
		errs[i] = &ConfigError{Err: errors.New(msg)}
	}
	return errors.Join(errs...)
}

// closest returns the candidate nearest to key by edit distance, if it is
// near enough to be a typo (at most 2 edits, and fewer than half of key),
// or "".
func closest(key string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		d := editDistance(key, c)
		if d < bestD && (2*d < len(key) || d == 1) {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, counting an
// exchange of two adjacent bytes as one edit (cahce_ttl).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30 // no typo of a key this long is worth the quadratic cost
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
