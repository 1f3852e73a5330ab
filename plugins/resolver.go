package plugins

import (
	"context"

	"github.com/wasmgate/wasmgate/network"
)

// Resolver returns the resolver the manifest asks for: its [dns] servers
// and hosts, or the system resolver when it names no servers (hosts entries
// still answer first).
func (m *Manifest) Resolver() network.Resolver {
	if len(m.DNSServers) > 0 {
		return network.DNSResolver{Servers: m.DNSServers, Hosts: m.DNSHosts}
	}
	if len(m.DNSHosts) > 0 {
		return hostsThenSystem{hosts: network.DNSResolver{Hosts: m.DNSHosts}}
	}
	return network.SystemResolver{}
}

// hostsThenSystem answers from static hosts, else from the system resolver.
type hostsThenSystem struct {
	hosts network.DNSResolver
}

func (r hostsThenSystem) Lookup(ctx context.Context, name string) ([]network.Answer, error) {
	if cn, err := network.CanonicalName(name); err == nil {
		if _, ok := r.hosts.Hosts[cn]; ok {
			return r.hosts.Lookup(ctx, cn)
		}
	}
	return network.SystemResolver{}.Lookup(ctx, name)
}
