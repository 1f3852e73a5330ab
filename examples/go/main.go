// Command example is wasmgate's example policy plugin in Go (sdk/policy),
// the same policy as examples/c and examples/assemblyscript: allow
// tcp.connect to port 443 and DNS lookups (dns.lookup, dns.answer) of names
// under one configured domain, deny the rest of those ops with a reason, and
// abstain on every other op. Build and test: README.md in this directory.
package main

import (
	"errors"
	"strconv"
	"sync"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// maxDomain is the longest DNS name (RFC 1035).
const maxDomain = 253

// config is the decoded [plugins.config] table, read once per instance.
var config = sync.OnceValues(loadConfig)

func loadConfig() (string, error) {
	m, err := policy.LoadConfigMap()
	if err != nil {
		return "", err
	}
	domain, ok, err := m.String("domain")
	if err != nil {
		return "", err
	}
	if err := m.Unused(); err != nil { // a misspelt key first: it explains a missing "domain"
		return "", err
	}
	if !ok {
		return "", errors.New(`"domain" is missing (want e.g. {"domain": "example.test"})`)
	}
	if !validDomain(domain) {
		return "", errors.New(`"domain" must be a lower-case DNS name of letters, digits, '-' and '.' (e.g. "example.test")`)
	}
	return domain, nil
}

// validDomain reports whether d is a lower-case DNS name: labels of 1-63
// letters, digits and '-', separated by single dots, at most 253 bytes.
// Anything else is refused, which also keeps the reasons below free of
// characters that would need escaping in any language.
func validDomain(d string) bool {
	if len(d) == 0 || len(d) > maxDomain {
		return false
	}
	label := 0
	for i := 0; i < len(d); i++ {
		c := d[i]
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
			label++
			if label > 63 {
				return false
			}
		default:
			return false
		}
	}
	return label > 0
}

// under reports whether name is domain or a name below it. The SDK hands
// the handler canonical names (lower-case, no trailing dot).
func under(name, domain string) bool {
	if len(name) == len(domain) {
		return name == domain
	}
	return len(name) > len(domain) && name[len(name)-len(domain)-1] == '.' &&
		name[len(name)-len(domain):] == domain
}

func decide(r policy.Request) policy.Verdict {
	domain, err := config()
	if err != nil {
		return policy.Deny("example: bad config") // fail closed
	}
	switch r.Op {
	case policy.OpTCPConnect:
		if r.Port == 443 {
			return policy.Allow("example: tcp.connect to port 443")
		}
		return policy.Deny("example: tcp.connect only to port 443, not " + strconv.Itoa(int(r.Port)))
	case policy.OpDNSLookup, policy.OpDNSAnswer:
		if under(r.Name, domain) {
			return policy.Allow("example: " + string(r.Op) + " under " + domain)
		}
		return policy.Deny("example: " + string(r.Op) + " outside " + domain)
	}
	return policy.Abstain()
}

func init() {
	policy.Describe(policy.Description{
		Name:    "example",
		Version: "1",
		Ops:     []policy.Op{policy.OpTCPConnect, policy.OpDNSLookup, policy.OpDNSAnswer},
	})
	policy.Validate(func() error {
		_, err := config()
		return err
	})
	policy.Handle(decide)
}

func main() {}
