package plugins

import (
	"regexp"
	"strconv"
	"strings"
)

// The prefix under which a plugin's validate error is reported, one
// problem per line of it (plugin.go).
const configRejected = "config rejected by the plugin: "

// quoted finds the Go/JSON-style quoted strings in a problem message.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// leadingKey finds a key name at the start of a message: `except "x": ...`.
var leadingKey = regexp.MustCompile(`^[A-Za-z0-9_-]+`)

// maxValueScan bounds the lines scanned below a config key for the line of
// one of its values.
const maxValueScan = 10000

func quoteKey(k string) string {
	if strings.ContainsAny(k, ". ") {
		return strconv.Quote(k)
	}
	return k
}

// problemLine is the manifest line a load problem of plugin i points at: for
// a problem the plugin found in its config, the line of the config key it is
// about (the key it names, or the key holding a value it quotes), and of the
// value itself when that is on a line of its own; otherwise the line of the
// plugin's [[plugins]] header.
func (m *Manifest) problemLine(i int, msg string) int {
	spec := &m.Plugins[i]
	body, ok := strings.CutPrefix(msg, configRejected)
	if !ok || spec.ConfigLines == nil {
		return spec.Line
	}
	body = strings.TrimPrefix(body, "config: ")
	var values []string
	for _, q := range quoted.FindAllString(body, 8) {
		if u, err := strconv.Unquote(q); err == nil {
			values = append(values, u)
		}
	}
	has := func(k string) bool { _, ok := spec.ConfigLines[k]; return ok && k != "" }
	key := ""
	switch {
	case strings.HasPrefix(body, "unknown key ") && len(values) > 0 && has(values[0]):
		key, values = values[0], nil
	case has(leadingKey.FindString(body)):
		key = leadingKey.FindString(body)
	case len(values) > 0 && has(values[0]) && strings.HasPrefix(body, `"`):
		key, values = values[0], values[1:]
	default:
	find:
		for _, val := range values {
			for k, vals := range spec.ConfigValues {
				for _, x := range vals {
					if x == val {
						key = k
						break find
					}
				}
			}
		}
	}
	if key == "" {
		if l := spec.ConfigLines[""]; l > 0 {
			return l
		}
		return spec.Line
	}
	line := spec.ConfigLines[key]
	if line <= 0 {
		return spec.Line
	}
	for _, val := range values {
		if l := m.valueLine(line, val); l > 0 {
			return l
		}
	}
	return line
}

// valueLine finds the line, from the key's line on and before the next key
// or table, where the string val is written, or 0.
func (m *Manifest) valueLine(keyLine int, val string) int {
	forms := []string{strconv.Quote(val), "'" + val + "'"}
	for n := keyLine - 1; n < len(m.text) && n < keyLine-1+maxValueScan; n++ {
		l := strings.TrimSpace(m.text[n])
		if n > keyLine-1 && (strings.HasPrefix(l, "[") && !strings.HasPrefix(l, `["`) && !strings.HasPrefix(l, "['") ||
			leadingKey.MatchString(l) && strings.Contains(l, "=") && !strings.HasPrefix(l, `"`)) {
			return 0
		}
		for _, f := range forms {
			if strings.Contains(l, f) {
				return n + 1
			}
		}
	}
	return 0
}
