// Package decisionbench holds the policies with which issue 15's decision
// cost is measured (BENCHMARKS.md, "Decision cost in a running guest"), so
// that the host benchmark (host's BenchmarkSockConnectPolicy) and the real
// run through the CLI (`scalebench decisioncost`) decide with the same
// chains. PORT stands for the echo server's port; every plugin is uncached
// (cache_ttl = "0s"), so each connection is decided by the plugins.
package decisionbench

import "strings"

// Allowlist is one built-in allowlist entry allowing the echo server.
const Allowlist = `
[[plugins]]
name = "egress"
use = "allowlist"
[plugins.config]
rules = ["tcp://127.0.0.1:PORT"]
cache_ttl = "0s"
`

// Chain3 is special-ranges (excepting loopback), a denylist and Allowlist.
const Chain3 = `
[[plugins]]
name = "no-special"
use = "special-ranges"
[plugins.config]
except = ["127.0.0.0/8"]
cache_ttl = "0s"
[[plugins]]
name = "no-smtp"
use = "denylist"
[plugins.config]
rules = ["tcp://*:25"]
cache_ttl = "0s"
` + Allowlist

// Native puts every built-in entry of plugins (Allowlist, Chain3) on the
// native engine.
func Native(plugins string) string {
	return strings.ReplaceAll(plugins, "\nuse = ", "\nengine = \"native\"\nuse = ")
}
