// Package special classifies IP addresses by the IANA IPv4 and IPv6
// special-purpose address registries, the multicast ranges, well-known cloud
// metadata endpoints, and IPv6 space outside global unicast (2000::/3).
//
// It is a plain data table with lookups over it, using only the standard
// library, so that it compiles for the host and for policy plugins
// (GOOS=wasip1) alike.
//
// Callers should pass canonical addresses (IPv4-mapped IPv6 unmapped, no
// zone). As a second line of defence, Classify treats an IPv4-mapped address
// as the IPv4 address it maps, so a forgotten Unmap cannot turn 127.0.0.1
// into an unclassified address. Zones are ignored.
//
// Sources: https://www.iana.org/assignments/iana-ipv4-special-registry/,
// https://www.iana.org/assignments/iana-ipv6-special-registry/, RFC 5771
// (IPv4 multicast), RFC 4291 (IPv6 addressing, IPv4-compatible addresses),
// RFC 6052 (NAT64 embedding), RFC 3056 (6to4), RFC 4380 (Teredo), and the
// cloud providers' instance metadata documentation.
package special

import (
	"net/netip"
	"strings"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// Category is a set of address categories. The zero Category means the
// address is in no special-purpose block: ordinary global unicast.
type Category uint32

// The categories. A block may carry several.
const (
	Loopback           Category = 1 << iota // 127.0.0.0/8, ::1
	Private                                 // RFC 1918, IPv6 unique-local fc00::/7
	LinkLocal                               // 169.254.0.0/16, fe80::/10
	Metadata                                // cloud instance metadata endpoints
	CGNAT                                   // shared address space 100.64.0.0/10
	Documentation                           // TEST-NET-1/2/3, 2001:db8::/32, 3fff::/20
	Benchmarking                            // 198.18.0.0/15, 2001:2::/48
	Multicast                               // 224.0.0.0/4, ff00::/8
	Broadcast                               // 255.255.255.255
	Reserved                                // reserved, deprecated or protocol-internal blocks that are not globally reachable
	Translation                             // IPv6 that embeds IPv4: NAT64, 6to4, Teredo, IPv4-compatible, IPv4-mapped
	Unspecified                             // 0.0.0.0, ::
	NotGlobalUnicastV6                      // IPv6 outside 2000::/3

	// None is the empty set; Any is every category.
	None Category = 0
	Any  Category = Loopback | Private | LinkLocal | Metadata | CGNAT | Documentation |
		Benchmarking | Multicast | Broadcast | Reserved | Translation | Unspecified | NotGlobalUnicastV6
)

var categoryNames = [...]struct {
	c    Category
	name string
}{
	{Loopback, "loopback"},
	{Private, "private"},
	{LinkLocal, "link-local"},
	{Metadata, "metadata"},
	{CGNAT, "cgnat"},
	{Documentation, "documentation"},
	{Benchmarking, "benchmarking"},
	{Multicast, "multicast"},
	{Broadcast, "broadcast"},
	{Reserved, "reserved"},
	{Translation, "translation"},
	{Unspecified, "unspecified"},
	{NotGlobalUnicastV6, "not-global-unicast-v6"},
}

// Has reports whether c contains every category of o (and o is not empty).
func (c Category) Has(o Category) bool { return o != 0 && c&o == o }

// HasAny reports whether c and o share a category.
func (c Category) HasAny(o Category) bool { return c&o != 0 }

// String lists the category names joined by "|", or "none".
func (c Category) String() string {
	if c == 0 {
		return "none"
	}
	var b strings.Builder
	for _, n := range categoryNames {
		if c&n.c != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(n.name)
			c &^= n.c
		}
	}
	if c != 0 { // bits that have no name: say so rather than hide them
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		b.WriteString("unknown")
	}
	return b.String()
}

// ParseCategory returns the category with the given name (as printed by
// String, e.g. "link-local"), for plugin configuration.
func ParseCategory(name string) (Category, bool) {
	for _, n := range categoryNames {
		if n.name == name {
			return n.c, true
		}
	}
	return 0, false
}

// CategoryNames returns the name of every single category, in bit order.
func CategoryNames() []string {
	out := make([]string, len(categoryNames))
	for i, n := range categoryNames {
		out[i] = n.name
	}
	return out
}

// Block is one entry of the table.
type Block struct {
	Prefix   netip.Prefix
	Name     string   // the registry's name for the block
	Registry string   // where the block comes from, e.g. "IANA IPv4 Special-Purpose", an RFC, a cloud provider
	Category Category // may be None for globally reachable assignments (e.g. 192.0.0.9/32)
	// Global marks a block that its registry lists as globally reachable
	// inside a larger block that is not (e.g. 192.0.0.9/32 inside
	// 192.0.0.0/24).
	Global bool
	// Exclusive blocks stop Classify: when one is the most specific
	// match, the enclosing blocks do not contribute their categories.
	// Every Global block is exclusive (the registry's footnotes say the
	// enclosing reservation does not apply), and so are :: and ::1, which
	// sit inside ::/96 but are not IPv4-compatible addresses.
	Exclusive bool
}

const (
	ianaV4 = "IANA IPv4 Special-Purpose"
	ianaV6 = "IANA IPv6 Special-Purpose"
)

func b(prefix, name, registry string, c Category) Block {
	return Block{Prefix: netip.MustParsePrefix(prefix), Name: name, Registry: registry, Category: c}
}

func global(prefix, name, registry string) Block {
	x := b(prefix, name, registry, None)
	x.Global = true
	x.Exclusive = true
	return x
}

func exclusive(x Block) Block {
	x.Exclusive = true
	return x
}

// table is sorted by descending prefix length at init, so that lookups see
// the most specific blocks first.
var table = []Block{
	// IPv4 special-purpose registry.
	b("0.0.0.0/8", "This network", ianaV4, Reserved),
	b("0.0.0.0/32", "This host on this network", ianaV4, Unspecified),
	b("10.0.0.0/8", "Private-Use", ianaV4, Private),
	b("100.64.0.0/10", "Shared Address Space", ianaV4, CGNAT),
	b("127.0.0.0/8", "Loopback", ianaV4, Loopback),
	b("169.254.0.0/16", "Link Local", ianaV4, LinkLocal),
	b("172.16.0.0/12", "Private-Use", ianaV4, Private),
	b("192.0.0.0/24", "IETF Protocol Assignments", ianaV4, Reserved),
	b("192.0.0.0/29", "IPv4 Service Continuity Prefix", ianaV4, Reserved),
	b("192.0.0.8/32", "IPv4 dummy address", ianaV4, Reserved),
	global("192.0.0.9/32", "Port Control Protocol Anycast", ianaV4),
	global("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", ianaV4),
	b("192.0.0.170/31", "NAT64/DNS64 Discovery", ianaV4, Reserved|Translation),
	b("192.0.2.0/24", "Documentation (TEST-NET-1)", ianaV4, Documentation),
	global("192.31.196.0/24", "AS112-v4", ianaV4),
	global("192.52.193.0/24", "AMT", ianaV4),
	b("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", ianaV4, Reserved|Translation),
	b("192.168.0.0/16", "Private-Use", ianaV4, Private),
	global("192.175.48.0/24", "Direct Delegation AS112 Service", ianaV4),
	b("198.18.0.0/15", "Benchmarking", ianaV4, Benchmarking),
	b("198.51.100.0/24", "Documentation (TEST-NET-2)", ianaV4, Documentation),
	b("203.0.113.0/24", "Documentation (TEST-NET-3)", ianaV4, Documentation),
	b("240.0.0.0/4", "Reserved", ianaV4, Reserved),
	b("255.255.255.255/32", "Limited Broadcast", ianaV4, Broadcast),
	b("224.0.0.0/4", "Multicast", "IANA IPv4 Multicast (RFC 5771)", Multicast),

	// Cloud metadata endpoints. Most sit inside link-local or CGNAT space
	// and inherit those categories too; 168.63.129.16 is public address
	// space that Azure intercepts on every VM.
	b("169.254.169.254/32", "Instance metadata (AWS, GCP, Azure, OCI, DigitalOcean, OpenStack)", "cloud", Metadata),
	b("169.254.170.2/32", "AWS ECS task metadata and credentials", "cloud", Metadata),
	b("169.254.170.23/32", "AWS EKS Pod Identity agent", "cloud", Metadata),
	b("100.100.100.200/32", "Alibaba Cloud instance metadata", "cloud", Metadata),
	b("168.63.129.16/32", "Azure WireServer / host platform", "cloud", Metadata),
	b("192.0.0.192/32", "Oracle Cloud legacy instance metadata", "cloud", Metadata),
	b("fd00:ec2::254/128", "AWS instance metadata (IPv6)", "cloud", Metadata),
	b("fd00:ec2::23/128", "AWS EKS Pod Identity agent (IPv6)", "cloud", Metadata),

	// IPv6 special-purpose registry.
	exclusive(b("::1/128", "Loopback Address", ianaV6, Loopback|NotGlobalUnicastV6)),
	exclusive(b("::/128", "Unspecified Address", ianaV6, Unspecified|NotGlobalUnicastV6)),
	b("::ffff:0:0/96", "IPv4-mapped Address", ianaV6, Translation),
	b("::/96", "IPv4-compatible Address (deprecated)", "RFC 4291", Translation|Reserved),
	b("64:ff9b::/96", "IPv4-IPv6 Translat.", ianaV6, Translation),
	b("64:ff9b:1::/48", "IPv4-IPv6 Translat. (local use)", ianaV6, Translation),
	b("100::/64", "Discard-Only Address Block", ianaV6, Reserved),
	b("100:0:0:1::/64", "Dummy IPv6 Prefix", ianaV6, Reserved),
	b("2001::/23", "IETF Protocol Assignments", ianaV6, Reserved),
	b("2001::/32", "TEREDO", ianaV6, Translation),
	global("2001:1::1/128", "Port Control Protocol Anycast", ianaV6),
	global("2001:1::2/128", "Traversal Using Relays around NAT Anycast", ianaV6),
	global("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", ianaV6),
	b("2001:2::/48", "Benchmarking", ianaV6, Benchmarking),
	global("2001:3::/32", "AMT", ianaV6),
	global("2001:4:112::/48", "AS112-v6", ianaV6),
	b("2001:10::/28", "Deprecated (previously ORCHID)", ianaV6, Reserved),
	// ORCHIDv2 is listed as globally reachable, but ORCHIDs are
	// identifiers, not locators (RFC 7343): kept Reserved on purpose.
	b("2001:20::/28", "ORCHIDv2", ianaV6, Reserved),
	global("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", ianaV6),
	b("2001:db8::/32", "Documentation", ianaV6, Documentation),
	b("2002::/16", "6to4", ianaV6, Translation),
	global("2620:4f:8000::/48", "Direct Delegation AS112 Service", ianaV6),
	b("3fff::/20", "Documentation", ianaV6, Documentation),
	b("5f00::/16", "Segment Routing (SRv6) SIDs", ianaV6, Reserved),
	b("fc00::/7", "Unique-Local", ianaV6, Private),
	b("fe80::/10", "Link-Local Unicast", ianaV6, LinkLocal),
	b("fec0::/10", "Site-Local (deprecated)", "RFC 3879", Reserved),
	b("ff00::/8", "Multicast", "RFC 4291", Multicast),

	// Everything outside 2000::/3 (global unicast), as three blocks.
	b("::/3", "Outside global unicast 2000::/3", "RFC 4291", NotGlobalUnicastV6),
	b("4000::/2", "Outside global unicast 2000::/3", "RFC 4291", NotGlobalUnicastV6),
	b("8000::/1", "Outside global unicast 2000::/3", "RFC 4291", NotGlobalUnicastV6),
}

func init() {
	// Insertion sort (the table is small) by descending prefix length,
	// stable so that the source order breaks ties.
	for i := 1; i < len(table); i++ {
		for j := i; j > 0 && table[j].Prefix.Bits() > table[j-1].Prefix.Bits(); j-- {
			table[j], table[j-1] = table[j-1], table[j]
		}
	}
	for _, blk := range table {
		a := blk.Prefix.Addr()
		if a.Is4() {
			b := a.As4()
			mask := ^uint32(0) << (32 - blk.Prefix.Bits())
			if blk.Prefix.Bits() == 0 {
				mask = 0
			}
			v4 = append(v4, entry4{base: be32(b[:]), mask: mask, cat: blk.Category, excl: blk.Exclusive})
			continue
		}
		b := a.As16()
		e := entry6{hi: be64(b[:8]), lo: be64(b[8:]), cat: blk.Category, excl: blk.Exclusive}
		bits := blk.Prefix.Bits()
		switch {
		case bits >= 64:
			e.mhi, e.mlo = ^uint64(0), ^uint64(0)<<(128-bits)
			if bits == 64 {
				e.mlo = 0
			}
		case bits > 0:
			e.mhi = ^uint64(0) << (64 - bits)
		}
		v6 = append(v6, e)
	}
	// Per first octet, the v4 entries that can match it, in table order.
	for o := 0; o < 256; o++ {
		v4First[o] = uint16(len(v4ByOctet))
		for i, e := range v4 {
			if uint32(o)<<24&e.mask == e.base&e.mask&0xff000000 {
				v4ByOctet = append(v4ByOctet, uint8(i))
			}
		}
	}
	v4First[256] = uint16(len(v4ByOctet))
	// The description of every block as the most specific one: its
	// categories are those Classify returns for any address whose first
	// match it is (the later matches are exactly the blocks containing it).
	explain = make([]string, len(table))
	for i, blk := range table {
		var c Category
		for j := i; j < len(table); j++ {
			o := table[j]
			if o.Prefix.Bits() <= blk.Prefix.Bits() && o.Prefix.Contains(blk.Prefix.Addr()) {
				c |= o.Category
				if o.Exclusive {
					break
				}
			}
		}
		explainCat = append(explainCat, c)
		if c != None {
			explain[i] = c.String() + " (" + blk.Name + ")"
		}
	}
	for i, blk := range table {
		if blk.Prefix.Addr().Is4() {
			v4Table = append(v4Table, uint8(i))
		} else {
			v6Table = append(v6Table, uint8(i))
		}
	}
}

// Per first octet o, v4ByOctet[v4First[o]:v4First[o+1]] are the indexes in
// v4 of the entries that can contain an address starting with o: Classify
// looks at two or three entries instead of all of them (each loop
// iteration costs a termination check inside a policy plugin).
var (
	v4First   [257]uint16
	v4ByOctet []uint8
)

// explain[i] describes table[i] as an address's most specific block, and
// explainCat[i] is Classify of such an address; v4Table and v6Table map
// indexes in v4 and v6 to indexes in table.
var (
	explain          []string
	explainCat       []Category
	v4Table, v6Table []uint8
)

// The table again, per family, as integers: Classify runs on every policy
// decision of the special-ranges plugin, and Prefix.Contains over the
// whole table costs about a microsecond.
type entry4 struct {
	base, mask uint32
	cat        Category
	excl       bool
}

type entry6 struct {
	hi, lo, mhi, mlo uint64
	cat              Category
	excl             bool
}

var (
	v4 []entry4
	v6 []entry6
)

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
func be64(b []byte) uint64 { return uint64(be32(b[:4]))<<32 | uint64(be32(b[4:8])) }

// Blocks returns a copy of the whole table, most specific blocks first.
func Blocks() []Block {
	return append([]Block(nil), table...)
}

// Lookup returns every block that contains addr, most specific first. It
// looks addr up as given: an IPv4-mapped address matches ::ffff:0:0/96,
// not the IPv4 blocks (Classify unmaps it). The zone is ignored.
func Lookup(addr netip.Addr) []Block {
	addr = addr.WithZone("")
	var out []Block
	for i := range table {
		if table[i].Prefix.Contains(addr) {
			out = append(out, table[i])
		}
	}
	return out
}

// Classify returns the union of the categories of the blocks containing
// addr, most specific first, stopping after an Exclusive block. An IPv4-mapped
// address is classified as the IPv4 address it maps. An invalid address is
// classified Any, so that a caller filtering on categories fails closed.
// Classify does not allocate.
func Classify(addr netip.Addr) Category {
	if !addr.IsValid() {
		return Any
	}
	addr = addr.Unmap()
	var c Category
	if addr.Is4() {
		b := addr.As4()
		x := be32(b[:])
		for _, i := range v4ByOctet[v4First[b[0]]:v4First[int(b[0])+1]] {
			if x&v4[i].mask == v4[i].base {
				c |= v4[i].cat
				if v4[i].excl {
					break
				}
			}
		}
		return c
	}
	b := addr.As16() // the zone, if any, is not part of it
	hi, lo := be64(b[:8]), be64(b[8:])
	for i := range v6 {
		if hi&v6[i].mhi == v6[i].hi && lo&v6[i].mlo == v6[i].lo {
			c |= v6[i].cat
			if v6[i].excl {
				break
			}
		}
	}
	return c
}

// Explain returns Classify(addr) and, when it is not None, a description
// of why: the category names and the registry name of the most specific
// block, e.g. "documentation (Documentation (TEST-NET-2))". The text is
// built once per block, so Explain does not allocate.
func Explain(addr netip.Addr) (Category, string) {
	if !addr.IsValid() {
		return Any, ""
	}
	addr = addr.Unmap()
	if addr.Is4() {
		b := addr.As4()
		x := be32(b[:])
		for _, i := range v4ByOctet[v4First[b[0]]:v4First[int(b[0])+1]] {
			if x&v4[i].mask == v4[i].base {
				t := v4Table[i]
				return explainCat[t], explain[t]
			}
		}
		return None, ""
	}
	b := addr.As16()
	hi, lo := be64(b[:8]), be64(b[8:])
	for i := range v6 {
		if hi&v6[i].mhi == v6[i].hi && lo&v6[i].mlo == v6[i].lo {
			t := v6Table[i]
			return explainCat[t], explain[t]
		}
	}
	return None, ""
}

// classifySlow is Classify over netip.Prefix, kept as the reference that
// the tests compare the fast path against.
func classifySlow(addr netip.Addr) Category {
	if !addr.IsValid() {
		return Any
	}
	addr = addr.WithZone("").Unmap()
	var c Category
	for i := range table {
		if table[i].Prefix.Contains(addr) {
			c |= table[i].Category
			if table[i].Exclusive {
				break
			}
		}
	}
	return c
}

// IsSpecial reports whether addr is in any category of mask, e.g.
// special.IsSpecial(a, special.Any).
func IsSpecial(addr netip.Addr, mask Category) bool { return Classify(addr)&mask != 0 }

// EmbeddedIPv4 returns the IPv4 address that an IPv6 address carries, so
// that a policy can classify it too: for an IPv4-mapped ::ffff:a.b.c.d,
// a.b.c.d; otherwise the first address of policy.EmbeddedIPv4 (NAT64
// 64:ff9b::/96 and 64:ff9b:1::/48, 6to4 2002::/16, the Teredo client of
// 2001::/32, IPv4-compatible ::a.b.c.d but not :: and ::1), which is where
// traffic to addr ends up. See policy.EmbeddedIPv4 for the bit positions
// and for the Teredo server, a second embedded address.
//
// It returns false for IPv4 addresses and any other IPv6 address.
func EmbeddedIPv4(addr netip.Addr) (netip.Addr, bool) {
	if !addr.Is6() {
		return netip.Addr{}, false
	}
	addr = addr.WithZone("")
	if addr.Is4In6() {
		return addr.Unmap(), true
	}
	if e := policy.EmbeddedIPv4(addr); len(e) > 0 {
		return e[0], true
	}
	return netip.Addr{}, false
}
