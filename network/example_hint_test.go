package network_test

import (
	"context"
	"net/netip"
	"os"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// A Default whose policy denies everything but DNS tells the user once per
// destination which allowlist rule would allow what was denied.
func ExampleDenyNotifier() {
	ctx := context.Background()
	d := &network.Default{
		Network:  &network.Simulated{},
		Resolver: network.DNSResolver{Hosts: map[string][]netip.Addr{"api.example.test": {netip.MustParseAddr("198.51.100.10")}}},
		Policy: network.PolicyFunc(func(ctx context.Context, r *network.Request) (network.Verdict, error) {
			if r.Op == policy.OpDNSLookup || r.Op == policy.OpDNSAnswer {
				return policy.Allow(""), nil
			}
			return policy.Deny("no plugin allowed " + string(r.Op)), nil
		}),
		OnDeny: network.DenyNotifier(os.Stdout), // os.Stderr in wasmgate run
	}
	addrs, _ := d.ResolveAddresses(ctx, "api.example.test")
	s, _ := d.Socket(ctx, network.TCP, network.IPv6)
	defer s.Close()
	for range 2 { // the second attempt prints nothing
		s.Connect(ctx, netip.AddrPortFrom(addrs[0], 443))
	}
	s.Bind(ctx, netip.MustParseAddrPort("[::1]:8080"))
	// Output:
	// wasmgate: denied tcp.connect 198.51.100.10:443 (api.example.test): no plugin allowed tcp.connect; to allow it add to an allowlist plugin: rules = ["tcp://api.example.test:443"]
	// wasmgate: denied tcp.bind [::1]:8080: no plugin allowed tcp.bind; to allow it add to an allowlist plugin: rules = ["bind tcp://[::1]:8080"]
}
