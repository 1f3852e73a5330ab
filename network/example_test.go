package network_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// A Default with a Go policy: a name-based rule enforced on a raw connect,
// through the name binding that the guest's lookup created.
func ExampleDefault() {
	ctx := context.Background()
	d := &network.Default{
		Network: &network.Simulated{}, // no real sockets in this example
		Resolver: network.DNSResolver{Hosts: map[string][]netip.Addr{
			"api.example.test": {netip.MustParseAddr("198.51.100.10")},
		}},
		Policy: network.PolicyFunc(func(ctx context.Context, r *network.Request) (network.Verdict, error) {
			switch r.Op {
			case policy.OpDNSLookup, policy.OpDNSAnswer:
				return policy.Allow("lookups are fine"), nil
			case policy.OpTCPConnect:
				for _, n := range r.Names {
					if n == "api.example.test" && r.Port == 443 {
						return policy.Allow("api"), nil
					}
				}
			}
			return policy.Deny("not on the list"), nil
		}),
	}
	addrs, _ := d.ResolveAddresses(ctx, "API.example.test.")
	fmt.Println(addrs, d.NamesFor(addrs[0]))

	s, _ := d.Socket(ctx, network.TCP, network.IPv4)
	defer s.Close()
	fmt.Println(s.Connect(ctx, netip.AddrPortFrom(addrs[0], 443)))
	err := s.Connect(ctx, netip.MustParseAddrPort("198.51.100.11:443"))
	fmt.Println(errors.Is(err, network.ErrDenied), err)
	// Output:
	// [198.51.100.10] [api.example.test]
	// <nil>
	// true connect tcp 198.51.100.11:443: wasmgate: tcp.connect 198.51.100.11:443: denied: not on the list
}

func ExampleCanonicalName() {
	for _, s := range []string{"WWW.Example.COM.", "a..b", "127.1", "bücher.example"} {
		fmt.Println(network.CanonicalName(s))
	}
	// Output:
	// www.example.com <nil>
	//  invalid DNS name "a..b": empty label
	//  invalid DNS name "127.1": numeric top-level label (an address, not a name)
	//  invalid DNS name "bücher.example": non-ASCII (use punycode)
}
