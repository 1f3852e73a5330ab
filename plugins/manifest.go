// Package plugins is the host side of wasmgate's policy plugins: the TOML
// manifest (docs/manifest.md), loading Extism plugins on wasmgate's own kernel
// call path, the instance pool, and the Chain that implements
// network.Policy with a verdict cache and an audit log (docs/policy.md#chain, docs/manifest.md#audit-records).
package plugins

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// Limits on manifest values; outside them a manifest is refused.
const (
	DefaultTimeout = 100 * time.Millisecond // per plugin call
	MaxTimeout     = 10 * time.Second       // a larger per-call timeout is surely a mistake
	DefaultInit    = 5 * time.Second        // each load-time call: _initialize, describe, validate
	MaxInit        = time.Minute            // a longer start-up is surely a mistake
	DefaultMemory  = 64 << 20               // bytes per plugin instance
	MinMemory      = 4 << 20                // Go-built plugins need ~3.3 MiB to start
	MaxMemory      = 4 << 30                // wasm32 address space
	DefaultNameTTL = 5 * time.Minute        // name binding lifetime when DNS gives none
	MaxNameTTL     = 7 * 24 * time.Hour     // sanity bound for dns.ttl
	wasmPage       = 64 << 10               // bytes per wasm page
	maxConfigJSON  = DefaultMaxConfigBytes  // the JSON of one [plugins.config]
	maxManifest    = 1 << 20                // bytes of TOML we are willing to read
	maxPluginFile  = 256 << 20              // bytes of one plugin .wasm
	hostMaxNames   = 64                     // dns.hosts addresses per name
	manifestNoLine = 0                      // for problems without a position
	durationHint   = `use a Go duration such as "50ms", "2s" or "5m"`
	sizeHint       = `use a size such as "16MiB" or "512KiB" (units B, KiB, MiB, GiB)`
)

// DefaultMaxConfigBytes caps the JSON encoding of one plugin's config.
const DefaultMaxConfigBytes = 1 << 20

// Manifest is a validated manifest: every value parsed and checked, every
// plugin's bytes read and (if pinned) hash-verified. Paths are absolute.
type Manifest struct {
	Path       string                  // the manifest file, as given
	SHA256     string                  // hex sha256 of the manifest's bytes (audit start records)
	Default    policy.Action           // ActionAllow or ActionDeny: the verdict when every plugin abstains
	Report     bool                    // mode = "report": log would_deny, never deny
	Revoke     bool                    // revoke = true (the default): a reload revokes the sockets the new policy denies
	Guest      string                  // [guest] name
	Labels     map[string]string       // [guest] labels
	DNSServers []string                // [dns] servers, "ip:port"; empty = the system resolver
	DNSHosts   map[string][]netip.Addr // [dns] hosts, canonical names and unmapped addresses
	NameTTL    time.Duration           // [dns] ttl, DefaultNameTTL when unset
	MaxSockets int                     // [limits] max_sockets, 0 = unlimited
	MaxFds     int                     // [limits] max_fds, 0 = unset (host.DefaultMaxFds)
	MaxMemory  uint64                  // [limits] max_memory in bytes (whole 64 KiB pages), 0 = unset
	Quotas     network.Quotas          // [limits] rates, totals and connection caps (quota.go); zero = none
	Plugins    []PluginSpec            // in manifest order
	text       []string                // the file's lines, to find a config value's own line
}

// PluginSpec is one [[plugins]] entry.
type PluginSpec struct {
	Name    string
	Use     string        // built-in name, or ""
	Path    string        // absolute path of the .wasm file, or ""
	OCI     string        // REGISTRY/REPO@sha256:DIGEST of an OCI artifact, or "" (docs/distribution.md)
	SHA256  string        // lower-case hex pin as written, or ""
	Timeout time.Duration // per call; 0 (Go-built manifests only): DefaultTimeout
	Init    time.Duration // each load-time call (init_timeout); 0: DefaultInit
	Memory  uint64        // bytes per instance, a multiple of 64 KiB; 0: DefaultMemory
	Report  bool          // mode = "report" for this plugin
	Config  []byte        // JSON of [plugins.config]; "{}" when absent (nil: "{}")
	Wasm    []byte        // the module bytes
	Line    int           // line of the [[plugins]] header, for later errors
	// ConfigLines maps each top-level key of [plugins.config] to its line,
	// and "" to the line of the table itself, so that a problem the plugin
	// finds in its config points at the key (configline.go).
	ConfigLines map[string]int
	// ConfigValues holds the string values under each config key, for
	// finding the key a problem quotes a value of.
	ConfigValues map[string][]string
	EngineSpec   // engine, allowed_hosts, allow_special (enginespec.go)
}

// Problem is one thing wrong with a manifest.
type Problem struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted key path, e.g. plugins[2].timeout
	Msg  string // what is wrong and how to fix it
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// ManifestError lists every problem found in a manifest (or in loading its
// plugins), so that one `wasmgate check` shows them all.
type ManifestError struct {
	Problems []Problem
}

func (e *ManifestError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// BuiltinLookup returns the wasm bytes of a built-in plugin. Load uses
// package builtin's Lookup unless Options says otherwise.
type BuiltinLookup func(name string) ([]byte, bool)

// ParseManifest reads, decodes strictly and validates the manifest at path.
// Built-in plugin names are resolved with lookup: nil means none are known
// (every use = "NAME" is a problem saying so); Load passes the embedded
// built-ins (package builtin's Lookup) unless Options.Builtins is set. A
// *ManifestError lists every problem.
func ParseManifest(path string, lookup BuiltinLookup) (*Manifest, error) {
	data, err := readLimited(path, maxManifest)
	if err != nil {
		return nil, &ManifestError{[]Problem{{File: path, Msg: err.Error()}}}
	}
	return ParseManifestData(path, data, lookup)
}

// ParseManifestData is ParseManifest on bytes already read; path names the
// file in problems and anchors relative plugin paths.
func ParseManifestData(path string, data []byte, lookup BuiltinLookup) (*Manifest, error) {
	// Both checks come before anything else reads data: the decoder (and
	// indexKeys) must only ever see input of bounded size and depth.
	if len(data) > maxManifest {
		return nil, &ManifestError{[]Problem{{File: path,
			Msg: fmt.Sprintf("is %d bytes; the limit is %d", len(data), maxManifest)}}}
	}
	if p, bad := nestingProblem(path, data); bad {
		return nil, &ManifestError{[]Problem{p}}
	}
	v := &validator{file: path, dir: filepath.Dir(path), lines: indexKeys(data), lookup: lookup}
	var raw map[string]any
	_, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			v.problems = append(v.problems, Problem{File: path, Line: pe.Position.Line,
				Msg: "TOML syntax: " + pe.Message})
		} else {
			v.problems = append(v.problems, Problem{File: path, Msg: "TOML: " + err.Error()})
		}
		return nil, &ManifestError{v.problems}
	}
	m := v.manifest(raw)
	if len(v.problems) > 0 {
		sort.SliceStable(v.problems, func(i, j int) bool { return v.problems[i].Line < v.problems[j].Line })
		return nil, &ManifestError{v.problems}
	}
	m.Path = path
	sum := sha256.Sum256(data)
	m.SHA256 = hex.EncodeToString(sum[:])
	m.text = strings.Split(string(data), "\n")
	return m, nil
}

type validator struct {
	file     string
	dir      string
	lines    map[string]int
	lookup   BuiltinLookup
	problems []Problem
}

func (v *validator) add(key, format string, args ...any) {
	v.problems = append(v.problems, Problem{File: v.file, Line: v.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// line finds the line of key, or of its closest ancestor we saw.
func (v *validator) line(key string) int {
	for k := key; k != ""; {
		if l, ok := v.lines[k]; ok {
			return l
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return manifestNoLine
}

func tomlType(x any) string {
	switch x.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	case time.Time:
		return "a date-time"
	}
	return fmt.Sprintf("%T", x)
}

func (v *validator) str(key string, x any) (string, bool) {
	s, ok := x.(string)
	if !ok {
		v.add(key, "must be a string, not %s", tomlType(x))
	}
	return s, ok
}

func (v *validator) table(key string, x any) (map[string]any, bool) {
	t, ok := x.(map[string]any)
	if !ok {
		v.add(key, "must be a table, not %s", tomlType(x))
	}
	return t, ok
}

func (v *validator) strList(key string, x any) ([]string, bool) {
	a, ok := x.([]any)
	if !ok {
		v.add(key, "must be an array of strings, not %s", tomlType(x))
		return nil, false
	}
	out := make([]string, 0, len(a))
	good := true
	for i, e := range a {
		s, ok := e.(string)
		if !ok {
			v.add(fmt.Sprintf("%s[%d]", key, i), "must be a string, not %s", tomlType(e))
			good = false
			continue
		}
		out = append(out, s)
	}
	return out, good
}

// unknown reports keys of t that are not in allowed.
func (v *validator) unknown(prefix string, t map[string]any, allowed ...string) {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		found := false
		for _, a := range allowed {
			if k == a {
				found = true
				break
			}
		}
		if !found {
			v.add(join(prefix, k), "unknown key (allowed here: %s); check the spelling against docs/manifest.md", strings.Join(allowed, ", "))
		}
	}
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

func (v *validator) manifest(raw map[string]any) *Manifest {
	m := &Manifest{Default: policy.ActionDeny, NameTTL: DefaultNameTTL, Revoke: true}
	v.unknown("", raw, "default", "mode", "revoke", "guest", "dns", "limits", "plugins")
	if x, ok := raw["default"]; ok {
		if s, ok := v.str("default", x); ok {
			switch s {
			case "deny":
			case "allow":
				m.Default = policy.ActionAllow
			default:
				v.add("default", `must be "deny" or "allow", not %q`, s)
			}
		}
	}
	if x, ok := raw["mode"]; ok {
		m.Report = v.mode("mode", x)
	}
	if x, ok := raw["revoke"]; ok {
		if b, ok := x.(bool); ok {
			m.Revoke = b
		} else {
			v.add("revoke", "must be true or false, not %s", tomlType(x))
		}
	}
	if x, ok := raw["guest"]; ok {
		if t, ok := v.table("guest", x); ok {
			v.unknown("guest", t, "name", "labels")
			if x, ok := t["name"]; ok {
				m.Guest, _ = v.str("guest.name", x)
			}
			if x, ok := t["labels"]; ok {
				if lt, ok := v.table("guest.labels", x); ok {
					m.Labels = map[string]string{}
					for k, lv := range lt {
						if s, ok := v.str("guest.labels."+k, lv); ok {
							m.Labels[k] = s
						}
					}
				}
			}
		}
	}
	if x, ok := raw["dns"]; ok {
		if t, ok := v.table("dns", x); ok {
			v.dns(t, m)
		}
	}
	if x, ok := raw["limits"]; ok {
		if t, ok := v.table("limits", x); ok {
			v.unknown("limits", t, append([]string{"max_sockets", "max_fds", "max_memory"}, quotaKeys...)...)
			v.quotas(t, m)
			if x, ok := t["max_sockets"]; ok {
				n, ok := x.(int64)
				switch {
				case !ok:
					v.add("limits.max_sockets", "must be an integer, not %s", tomlType(x))
				case n < 0 || n > 1<<20:
					v.add("limits.max_sockets", "must be between 0 (unlimited) and 1048576, not %d", n)
				default:
					m.MaxSockets = int(n)
				}
			}
			if x, ok := t["max_fds"]; ok {
				// The bounds are host.Config.WithMaxFds's (this package
				// does not import host): the floor leaves room for stdio,
				// directories and listen sockets.
				n, ok := x.(int64)
				switch {
				case !ok:
					v.add("limits.max_fds", "must be an integer, not %s", tomlType(x))
				case n < 64 || n > 1<<20:
					v.add("limits.max_fds", "must be between 64 and 1048576, not %d", n)
				default:
					m.MaxFds = int(n)
				}
			}
			if x, ok := t["max_memory"]; ok {
				// The guest's linear memory (host.Config.WithMemoryLimit):
				// whole pages, at least one, at most wasm32's 4 GiB.
				if s, ok := v.str("limits.max_memory", x); ok {
					n, err := parseSize(s)
					switch {
					case err != nil:
						v.add("limits.max_memory", "%q is not a size; %s", s, sizeHint)
					case n < wasmPage || n > MaxMemory:
						v.add("limits.max_memory", "must be between 64KiB and 4GiB, not %s", s)
					default:
						m.MaxMemory = n / wasmPage * wasmPage
					}
				}
			}
		}
	}
	if x, ok := raw["plugins"]; ok {
		list, ok := x.([]map[string]any)
		if a, isArr := x.([]any); isArr {
			ok = true
			for _, e := range a {
				t, isTable := e.(map[string]any)
				if !isTable {
					ok = false
					break
				}
				list = append(list, t)
			}
		}
		if !ok {
			v.add("plugins", "must be an array of tables written as [[plugins]], not %s", tomlType(x))
		}
		seen := map[string]string{}
		for i, t := range list {
			p := v.plugin(fmt.Sprintf("plugins[%d]", i+1), t)
			if p.Name != "" {
				if prev, dup := seen[p.Name]; dup {
					v.add(fmt.Sprintf("plugins[%d].name", i+1), "duplicate plugin name %q (also %s); give each plugin a unique name", p.Name, prev)
				}
				seen[p.Name] = fmt.Sprintf("plugins[%d]", i+1)
			}
			m.Plugins = append(m.Plugins, p)
		}
	}
	return m
}

func (v *validator) mode(key string, x any) bool {
	s, ok := v.str(key, x)
	if !ok {
		return false
	}
	switch s {
	case "enforce":
		return false
	case "report":
		return true
	}
	v.add(key, `must be "enforce" or "report", not %q`, s)
	return false
}

func (v *validator) dns(t map[string]any, m *Manifest) {
	v.unknown("dns", t, "servers", "hosts", "ttl")
	if x, ok := t["servers"]; ok {
		if list, ok := v.strList("dns.servers", x); ok {
			for i, s := range list {
				ap, err := netip.ParseAddrPort(s)
				if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
					v.add(fmt.Sprintf("dns.servers[%d]", i), `%q is not an "ip:port" address (e.g. "127.0.0.1:53" or "[::1]:53")`, s)
					continue
				}
				m.DNSServers = append(m.DNSServers, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String())
			}
		}
	}
	if x, ok := t["hosts"]; ok {
		if ht, ok := v.table("dns.hosts", x); ok {
			m.DNSHosts = map[string][]netip.Addr{}
			names := make([]string, 0, len(ht))
			for k := range ht {
				names = append(names, k)
			}
			sort.Strings(names)
			for _, name := range names {
				key := fmt.Sprintf("dns.hosts.%q", name)
				cn, err := canonicalName(name)
				if err != nil {
					v.add(key, "%v", err)
					continue
				}
				list, ok := v.strList(key, ht[name])
				if !ok {
					continue
				}
				if len(list) == 0 || len(list) > hostMaxNames {
					v.add(key, "must list 1 to %d addresses", hostMaxNames)
					continue
				}
				for i, s := range list {
					a, err := netip.ParseAddr(s)
					if err != nil || a.Zone() != "" {
						v.add(fmt.Sprintf("%s[%d]", key, i), "%q is not an IP address (a CIDR or name is not allowed here; write e.g. \"10.0.0.7\")", s)
						continue
					}
					m.DNSHosts[cn] = append(m.DNSHosts[cn], a.Unmap())
				}
			}
		}
	}
	if x, ok := t["ttl"]; ok {
		if s, ok := v.str("dns.ttl", x); ok {
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				v.add("dns.ttl", "%q is not a duration; %s", s, durationHint)
			case d <= 0 || d > MaxNameTTL:
				v.add("dns.ttl", "must be more than 0 and at most %v, not %v", MaxNameTTL, d)
			default:
				m.NameTTL = d
			}
		}
	}
}

// canonicalName is network.CanonicalName, refusing IP literals: a hosts
// entry maps a name to addresses.
func canonicalName(s string) (string, error) {
	if network.IsIPLiteral(s) {
		return "", fmt.Errorf("%q is an IP address, not a name; an address needs no hosts entry", s)
	}
	n, err := network.CanonicalName(s)
	if err != nil {
		return "", fmt.Errorf("%v; use a host name such as \"db.internal\"", err)
	}
	return n, nil
}

func (v *validator) plugin(key string, t map[string]any) PluginSpec {
	p := PluginSpec{Timeout: DefaultTimeout, Init: DefaultInit, Memory: DefaultMemory, Config: []byte("{}"), Line: v.line(key)}
	v.unknown(key, t, "name", "use", "path", "oci", "sha256", "timeout", "init_timeout", "memory", "mode", "config",
		"engine", "allowed_hosts", "allow_special")
	if x, ok := t["name"]; ok {
		if s, ok := v.str(key+".name", x); ok {
			if s == "" {
				v.add(key+".name", "must not be empty")
			}
			p.Name = s
		}
	} else {
		v.add(key, `has no name; add name = "..." (used in audit records and deny reasons)`)
	}
	use, hasUse := t["use"]
	nativeOnly := false
	path, hasPath := t["path"]
	ref, hasOCI := t["oci"]
	switch {
	case hasOCI && (hasUse || hasPath):
		v.add(key, `has oci and use or path; a plugin is one of a built-in (use), a file (path) or an OCI artifact (oci)`)
	case hasOCI:
		p.OCI, p.Wasm = v.oci(key, ref, t)
	case hasUse && hasPath:
		v.add(key, `has both use and path; a plugin is either a built-in (use = "allowlist") or a file (path = "x.wasm")`)
	case !hasUse && !hasPath:
		v.add(key, `has neither use nor path; add use = "NAME" for a built-in or path = "FILE.wasm"`)
	case hasUse:
		if s, ok := v.str(key+".use", use); ok {
			p.Use = s
			b, found := []byte(nil), false
			if v.lookup != nil {
				b, found = v.lookup(s)
			}
			if !found {
				v.add(key+".use", "%s", unknownBuiltin(s, v.lookup))
			}
			// Found without bytes: a program's own native plugin
			// (Options.Natives), which has no wasm form.
			nativeOnly = found && b == nil
			p.Wasm = b
			if _, ok := t["sha256"]; ok {
				v.add(key+".sha256", "only a path plugin can be pinned; built-ins are part of the wasmgate binary")
			}
		}
	case hasPath:
		if s, ok := v.str(key+".path", path); ok {
			if s == "" {
				v.add(key+".path", "must not be empty")
				break
			}
			if !filepath.IsAbs(s) {
				s = filepath.Join(v.dir, s)
			}
			p.Path = s
			b, err := readLimited(s, maxPluginFile)
			if err != nil {
				v.add(key+".path", "cannot read plugin: %v (paths are relative to the manifest's directory)", unwrapPathErr(err))
				break
			}
			p.Wasm = b
			if x, ok := t["sha256"]; ok {
				if pin, ok := v.str(key+".sha256", x); ok {
					p.SHA256 = pin
					sum := sha256.Sum256(b)
					got := hex.EncodeToString(sum[:])
					switch {
					case len(pin) != 64 || strings.Trim(strings.ToLower(pin), "0123456789abcdef") != "":
						v.add(key+".sha256", "must be 64 hex digits (the output of sha256sum), not %q", pin)
					case strings.ToLower(pin) != got:
						v.add(key+".sha256", "mismatch: %s has sha256 %s; refusing to load a plugin that is not the pinned one (update the pin only if you trust the new file)", filepath.Base(s), got)
					}
				}
			}
		}
	}
	if x, ok := t["timeout"]; ok {
		if s, ok := v.str(key+".timeout", x); ok {
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				v.add(key+".timeout", "%q is not a duration; %s", s, durationHint)
			case d <= 0 || d > MaxTimeout:
				v.add(key+".timeout", "must be more than 0 and at most %v, not %v", MaxTimeout, d)
			default:
				p.Timeout = d
			}
		}
	}
	if x, ok := t["init_timeout"]; ok {
		if s, ok := v.str(key+".init_timeout", x); ok {
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				v.add(key+".init_timeout", "%q is not a duration; %s", s, durationHint)
			case d <= 0 || d > MaxInit:
				v.add(key+".init_timeout", "must be more than 0 and at most %v, not %v", MaxInit, d)
			default:
				p.Init = d
			}
		}
	}
	if x, ok := t["memory"]; ok {
		if s, ok := v.str(key+".memory", x); ok {
			n, err := parseSize(s)
			switch {
			case err != nil:
				v.add(key+".memory", "%q is not a size; %s", s, sizeHint)
			case n < MinMemory || n > MaxMemory:
				v.add(key+".memory", "must be between 4MiB and 4GiB, not %s", s)
			default:
				p.Memory = (n + wasmPage - 1) / wasmPage * wasmPage
			}
		}
	}
	if x, ok := t["mode"]; ok {
		p.Report = v.mode(key+".mode", x)
	}
	p.EngineSpec = v.engineSpec(key, t)
	if nativeOnly && p.Engine != "" && p.Engine != EngineAuto && p.Engine != EngineNative {
		v.add(key+".engine", "%q is a native plugin of this program with no wasm form; it runs only on engine \"native\"", p.Use)
	}
	if p.Engine == EngineNative || nativeOnly {
		if !hasUse {
			v.add(key+".engine", `"native" runs a built-in plugin in wasmgate's own process; it needs use = "NAME" (a file or OCI plugin always runs in the sandbox)`)
		}
		why := `has no effect with engine = "native": a native built-in runs without the sandbox's deadline and memory cap`
		if nativeOnly {
			why = `has no effect on a native plugin of this program: it runs without the sandbox's deadline and memory cap`
		}
		for _, k := range []string{"timeout", "memory"} {
			if _, ok := t[k]; ok {
				v.add(key+"."+k, "%s", why)
			}
		}
	}
	if x, ok := t["config"]; ok {
		if ct, ok := v.table(key+".config", x); ok {
			b, err := json.Marshal(ct)
			switch {
			case err != nil:
				v.add(key+".config", "cannot be encoded as JSON: %v", err)
			case len(b) > maxConfigJSON:
				v.add(key+".config", "is %d bytes as JSON; the limit is %d", len(b), maxConfigJSON)
			default:
				p.Config = b
			}
			p.ConfigLines = map[string]int{"": v.line(key + ".config")}
			p.ConfigValues = map[string][]string{}
			for k, val := range ct {
				p.ConfigLines[k] = v.line(key + ".config." + quoteKey(k))
				p.ConfigValues[k] = stringsIn(val, nil)
			}
		}
	}
	return p
}

// stringsIn appends the strings in x (a TOML value) to out.
func stringsIn(x any, out []string) []string {
	switch x := x.(type) {
	case string:
		out = append(out, x)
	case []any:
		for _, e := range x {
			out = stringsIn(e, out)
		}
	case map[string]any:
		for k, e := range x {
			out = append(out, k)
			out = stringsIn(e, out)
		}
	}
	return out
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// parseSize parses "16MiB", "512KiB", "1GiB", "65536B" or "65536".
func parseSize(s string) (uint64, error) {
	num := strings.TrimRight(s, "BKMGi")
	unit := s[len(num):]
	mult := map[string]uint64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit %q", unit)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
	if err != nil || n > (1<<40)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	return ReadRegularFile(path, limit)
}

// indexKeys maps dotted key paths (as the validator names them, e.g.
// "plugins[2].timeout", "dns.hosts") to the line where they are defined. It
// is a light scanner, not a TOML parser: it only has to find positions in a
// file the real parser has accepted.
func indexKeys(data []byte) map[string]int {
	lines := map[string]int{}
	table := ""
	arrays := map[string]int{}
	for n, line := range strings.Split(string(data), "\n") {
		l := strings.TrimSpace(line)
		if l == "" || l[0] == '#' {
			continue
		}
		if strings.HasPrefix(l, "[[") {
			end := strings.Index(l, "]]")
			if end < 0 {
				continue
			}
			name := normKey(l[2:end])
			arrays[name]++
			table = fmt.Sprintf("%s[%d]", name, arrays[name])
			lines[table] = n + 1
			if _, ok := lines[name]; !ok {
				lines[name] = n + 1
			}
			continue
		}
		if l[0] == '[' {
			end := strings.Index(l, "]")
			if end < 0 {
				continue
			}
			name := normKey(l[1:end])
			// [plugins.config] belongs to the latest [[plugins]]. Only the
			// prefixes of name are looked up, never every array: a file
			// of many arrays and tables must not cost their product.
			for i := 0; i < len(name); i++ {
				if name[i] != '.' {
					continue
				}
				if cnt, ok := arrays[name[:i]]; ok {
					name = fmt.Sprintf("%s[%d]%s", name[:i], cnt, name[i:])
					break
				}
			}
			table = name
			lines[table] = n + 1
			continue
		}
		eq := strings.IndexByte(l, '=')
		if eq <= 0 {
			continue
		}
		k := normKey(l[:eq])
		full := join(table, k)
		if _, ok := lines[full]; !ok {
			lines[full] = n + 1
		}
	}
	return lines
}

// normKey turns `a . "b c"` into `a."b c"` minus quotes around simple keys.
func normKey(k string) string {
	parts := strings.Split(k, ".")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if len(p) >= 2 && (p[0] == '"' || p[0] == '\'') {
			inner := p[1 : len(p)-1]
			if strings.ContainsAny(inner, ". ") {
				p = strconv.Quote(inner)
			} else {
				p = inner
			}
		}
		parts[i] = p
	}
	return strings.Join(parts, ".")
}
