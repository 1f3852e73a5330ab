package plugins

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/sdk/policy/special"
)

// EngineSpec is what a [[plugins]] entry says about its engine and its
// HTTP access (docs/manifest.md, docs/plugins.md#8-engines).
type EngineSpec struct {
	// Engine is EngineAuto (also when absent), EngineWasmgate or EngineExtism.
	Engine string
	// AllowedHosts are the hosts http_request may reach (extism engine
	// only): canonical names, "*.suffix" patterns (any name under suffix)
	// and canonical IP addresses. Empty: none.
	AllowedHosts []string
	// AllowSpecial lists the special address ranges (sdk/policy/special
	// categories) that http_request may nonetheless connect to; none by
	// default, so a name resolving to 127.0.0.1 or 169.254.169.254 is
	// refused at connect time.
	AllowSpecial special.Category
}

// maxAllowedHosts caps allowed_hosts entries per plugin.
const maxAllowedHosts = 256

func (v *validator) engineSpec(key string, t map[string]any) EngineSpec {
	e := EngineSpec{Engine: EngineAuto}
	if x, ok := t["engine"]; ok {
		if s, ok := v.str(key+".engine", x); ok {
			switch s {
			case EngineAuto, EngineWasmgate, EngineExtism, EngineNative:
				e.Engine = s
			default:
				v.add(key+".engine", `must be "auto", "wasmgate", "extism" or "native", not %q`, s)
			}
		}
	}
	if x, ok := t["allow_special"]; ok {
		if list, ok := v.strList(key+".allow_special", x); ok {
			for i, s := range list {
				c, ok := special.ParseCategory(s)
				if !ok {
					v.add(fmt.Sprintf("%s.allow_special[%d]", key, i), "unknown range %q (one of: %s)", s, strings.Join(special.CategoryNames(), ", "))
					continue
				}
				e.AllowSpecial |= c
			}
		}
	}
	if x, ok := t["allowed_hosts"]; ok {
		if e.Engine == EngineWasmgate || e.Engine == EngineNative {
			v.add(key+".allowed_hosts", `needs engine = "extism" (or "auto"): only the extism engine serves http_request`)
		}
		if list, ok := v.strList(key+".allowed_hosts", x); ok {
			if len(list) > maxAllowedHosts {
				v.add(key+".allowed_hosts", "has %d entries; the limit is %d", len(list), maxAllowedHosts)
				list = nil
			}
			for i, s := range list {
				h, err := allowedHost(s, e.AllowSpecial)
				if err != nil {
					v.add(fmt.Sprintf("%s.allowed_hosts[%d]", key, i), "%v", err)
					continue
				}
				e.AllowedHosts = append(e.AllowedHosts, h)
			}
		}
	} else if e.AllowSpecial != 0 {
		v.add(key+".allow_special", "has no effect without allowed_hosts")
	}
	return e
}

// allowedHost canonicalises one allowed_hosts entry: a host name, a
// "*.suffix" pattern or an IP address. An address in a special range is
// refused here unless allow[_special] lists every range it is in; names
// are checked at connect time, on the addresses they resolve to.
func allowedHost(s string, allow special.Category) (string, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		ca, err := network.CanonicalAddr(a)
		if err != nil {
			return "", err
		}
		if c := special.Classify(ca); c&^allow != 0 {
			return "", fmt.Errorf("%s is a special address (%s); http_request to it is refused unless allow_special lists %s", ca, c, strings.ReplaceAll((c&^allow).String(), "|", " and "))
		}
		return ca.String(), nil
	}
	name, wild := s, false
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		name, wild = rest, true
	}
	if strings.ContainsAny(name, "*?[]{}") {
		return "", fmt.Errorf("%q: only a host name, an IP address or \"*.\" followed by a domain is allowed", s)
	}
	if strings.Contains(name, ":") || strings.Contains(name, "/") {
		return "", fmt.Errorf("%q: a host only, without scheme, port or path", s)
	}
	cn, err := network.CanonicalName(name)
	if err != nil {
		return "", fmt.Errorf("%v; use a host name such as \"api.example.com\"", err)
	}
	if wild {
		if !strings.Contains(cn, ".") {
			return "", fmt.Errorf("%q matches a whole top-level domain; name a domain such as \"*.example.com\"", s)
		}
		return "*." + cn, nil
	}
	return cn, nil
}
