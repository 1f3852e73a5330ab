package special_test

import (
	"fmt"
	"net/netip"

	"github.com/wasmgate/wasmgate/sdk/policy/special"
)

func ExampleClassify() {
	for _, s := range []string{"169.254.169.254", "100.64.0.1", "::ffff:127.0.0.1", "64:ff9b::a00:1", "8.8.8.8"} {
		a := netip.MustParseAddr(s)
		c := special.Classify(a)
		if v4, ok := special.EmbeddedIPv4(a); ok && !a.Is4In6() {
			c |= special.Classify(v4) // also judge what a NAT64 prefix carries
		}
		fmt.Println(s, c)
	}
	// Output:
	// 169.254.169.254 link-local|metadata
	// 100.64.0.1 cgnat
	// ::ffff:127.0.0.1 loopback
	// 64:ff9b::a00:1 private|translation|not-global-unicast-v6
	// 8.8.8.8 none
}
