package policy

import "net/netip"

// EmbeddedIPv4 returns the IPv4 addresses that the IPv6 address a carries
// in one of the standard embeddings, which is what Request.EmbeddedIPv4
// holds (docs/plugins.md, "Embedded IPv4"). First comes the address that
// traffic to a reaches through a translator or tunnel:
//
//   - NAT64 well-known prefix 64:ff9b::/96 (RFC 6052): the last 32 bits;
//   - NAT64 local-use prefix 64:ff9b:1::/48 (RFC 8215), with the layout
//     RFC 6052 gives a /48 prefix: bits 48-63 and 72-87 (bits 64-71, the
//     "u" octet, are skipped). An operator who uses a longer prefix inside
//     the block moves the bits: rules for such a network must name the
//     IPv6 prefix;
//   - 6to4 2002::/16 (RFC 3056): bits 16-47;
//   - Teredo 2001:0::/32 (RFC 4380): the client, the last 32 bits
//     inverted, then a second address, the Teredo server, bits 32-63;
//   - IPv4-compatible ::a.b.c.d (RFC 4291, deprecated): the last 32 bits,
//     except for :: and ::1, which are not IPv4-compatible.
//
// It returns nil for an IPv4 address, an IPv4-mapped IPv6 address (the
// host unmaps those before any policy sees them) and every other address.
func EmbeddedIPv4(a netip.Addr) []netip.Addr {
	var buf [2]netip.Addr
	n := embeddedIPv4(a, &buf)
	if n == 0 {
		return nil
	}
	return append([]netip.Addr(nil), buf[:n]...)
}

// embeddedIPv4 is EmbeddedIPv4 into a caller's array, without allocating.
func embeddedIPv4(a netip.Addr, out *[2]netip.Addr) int {
	if !a.Is6() || a.Is4In6() {
		return 0
	}
	b := a.As16()
	hi := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	mid := uint32(b[8])<<24 | uint32(b[9])<<16 | uint32(b[10])<<8 | uint32(b[11])
	last := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	switch {
	case hi == 0x0064_ff9b_0000_0000 && mid == 0: // 64:ff9b::/96
		out[0] = last
		return 1
	case hi>>16 == 0x0064_ff9b_0001: // 64:ff9b:1::/48
		out[0] = netip.AddrFrom4([4]byte{b[6], b[7], b[9], b[10]})
		return 1
	case hi>>48 == 0x2002: // 2002::/16
		out[0] = netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
		return 1
	case hi>>32 == 0x2001_0000: // 2001:0::/32
		out[0] = netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		out[1] = netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]})
		return 2
	case hi == 0 && mid == 0: // ::/96
		if l := last.As4(); l[0]|l[1]|l[2] == 0 && l[3] <= 1 {
			return 0 // :: and ::1
		}
		out[0] = last
		return 1
	}
	return 0
}
