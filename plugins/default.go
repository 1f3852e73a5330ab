package plugins

import "github.com/wasmgate/wasmgate/network"

// NewDefault returns the network.Default for one guest instance under this
// policy: the chain as Policy, the manifest's resolver, guest identity,
// name-binding TTL, socket limit and quotas, over base (nil: network.System{}).
// `wasmgate run` and `wasmgate decide` both build their network here, so
// decide simulates exactly what run enforces.
func (p *Policy) NewDefault(base network.Network) *network.Default {
	return p.Manifest.NewDefault(base, p.Chain)
}

// NewDefault is Policy.NewDefault with any policy (decide wraps the chain
// to learn which plugin decided each request).
func (m *Manifest) NewDefault(base network.Network, pol network.Policy) *network.Default {
	d := &network.Default{
		Network:    base,
		Policy:     pol,
		Resolver:   m.Resolver(),
		Guest:      m.Guest,
		Labels:     m.Labels,
		NameTTL:    m.NameTTL,
		MaxSockets: m.MaxSockets,
	}
	d.SetQuotas(m.Quotas)
	return d
}
