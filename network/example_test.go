package network_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"

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

// A Go policy in front of another (here a stand-in for a plugin chain),
// with every decision written to an audit log in wasmgate's format.
func ExampleAll() {
	onlyTLS := network.PolicyFunc(func(ctx context.Context, r *network.Request) (network.Verdict, error) {
		if r.Op == network.OpTCPConnect && r.Port != 443 {
			return network.Deny("only port 443"), nil
		}
		return network.Abstain(), nil
	})
	chain := network.PolicyFunc(func(ctx context.Context, r *network.Request) (network.Verdict, error) {
		return network.Allow("the chain allows it"), nil
	})
	audit := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration_us" {
				return slog.Attr{} // varies from run to run
			}
			return a
		},
	}))
	d := &network.Default{
		Network: &network.Simulated{}, // no real sockets in this example
		Policy:  network.Audited(network.All(onlyTLS, chain), audit),
	}
	ctx := context.Background()
	for _, port := range []uint16{443, 80} {
		s, _ := d.Socket(ctx, network.TCP, network.IPv4)
		err := s.Connect(ctx, netip.AddrPortFrom(netip.MustParseAddr("192.0.2.7"), port))
		fmt.Println("connect", port, "denied:", errors.Is(err, network.ErrDenied))
		s.Close()
	}
	// Output:
	// {"level":"INFO","msg":"decision","guest":"","op":"tcp.connect","proto":"tcp","addr":"192.0.2.7","port":443,"names":[],"verdict":"allow","plugin":"","reason":"the chain allows it","cached":false}
	// connect 443 denied: false
	// {"level":"INFO","msg":"decision","guest":"","op":"tcp.connect","proto":"tcp","addr":"192.0.2.7","port":80,"names":[],"verdict":"deny","plugin":"","reason":"only port 443","cached":false}
	// connect 80 denied: true
}
