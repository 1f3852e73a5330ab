package special

import (
	"net/netip"
	"testing"
)

var classifyTests = []struct {
	addr string
	want Category
}{
	// Ordinary global unicast.
	{"8.8.8.8", None},
	{"1.1.1.1", None},
	{"2606:4700::1111", None},
	{"2a00:1450:4001::1", None},

	// Unspecified and "this network".
	{"0.0.0.0", Unspecified | Reserved},
	{"0.1.2.3", Reserved},
	{"0.255.255.255", Reserved},
	{"1.0.0.0", None},
	{"::", Unspecified | NotGlobalUnicastV6},

	// Loopback.
	{"127.0.0.1", Loopback},
	{"127.255.255.255", Loopback},
	{"126.255.255.255", None},
	{"128.0.0.0", None},
	{"::1", Loopback | NotGlobalUnicastV6},

	// Private.
	{"10.0.0.1", Private},
	{"9.255.255.255", None},
	{"11.0.0.0", None},
	{"172.16.0.0", Private},
	{"172.31.255.255", Private},
	{"172.15.255.255", None},
	{"172.32.0.0", None},
	{"192.168.1.1", Private},
	{"fc00::1", Private | NotGlobalUnicastV6},
	{"fd12:3456::1", Private | NotGlobalUnicastV6},

	// CGNAT edges.
	{"100.63.255.255", None},
	{"100.64.0.0", CGNAT},
	{"100.127.255.255", CGNAT},
	{"100.128.0.0", None},

	// Link-local and metadata.
	{"169.254.0.1", LinkLocal},
	{"169.254.169.254", LinkLocal | Metadata},
	{"169.254.169.253", LinkLocal},
	{"169.254.170.2", LinkLocal | Metadata},
	{"100.100.100.200", CGNAT | Metadata},
	{"168.63.129.16", Metadata},
	{"fe80::1", LinkLocal | NotGlobalUnicastV6},
	{"fd00:ec2::254", Private | Metadata | NotGlobalUnicastV6},
	{"fd00:ec2::253", Private | NotGlobalUnicastV6},

	// 192.0.0.0/24 and its globally reachable exceptions.
	{"192.0.0.0", Reserved},
	{"192.0.0.8", Reserved},
	{"192.0.0.9", None},
	{"192.0.0.10", None},
	{"192.0.0.11", Reserved},
	{"192.0.0.170", Reserved | Translation},
	{"192.0.0.171", Reserved | Translation},
	{"192.0.0.192", Reserved | Metadata},
	{"192.0.0.255", Reserved},
	{"192.0.1.0", None},

	// Documentation and benchmarking.
	{"192.0.2.1", Documentation},
	{"198.51.100.7", Documentation},
	{"203.0.113.255", Documentation},
	{"203.0.114.0", None},
	{"198.18.0.0", Benchmarking},
	{"198.19.255.255", Benchmarking},
	{"198.20.0.0", None},
	{"198.17.255.255", None},
	{"2001:db8::1", Documentation}, // outside 2001::/23
	{"3fff::1", Documentation},
	{"3fff:1000::", None},
	{"2001:2::1", Benchmarking | Reserved},

	// Multicast, broadcast, reserved.
	{"224.0.0.1", Multicast},
	{"239.255.255.255", Multicast},
	{"240.0.0.1", Reserved},
	{"255.255.255.254", Reserved},
	{"255.255.255.255", Broadcast | Reserved},
	{"ff02::1", Multicast | NotGlobalUnicastV6},
	{"fec0::1", Reserved | NotGlobalUnicastV6},
	{"100::1", Reserved | NotGlobalUnicastV6},
	{"5f00::1", Reserved | NotGlobalUnicastV6},

	// Translation embeddings.
	{"64:ff9b::a00:1", Translation | NotGlobalUnicastV6},
	{"64:ff9b::808:808", Translation | NotGlobalUnicastV6},
	{"64:ff9b:1::1", Translation | NotGlobalUnicastV6},
	{"2002:a00:1::1", Translation},
	{"2001::1", Translation | Reserved},
	{"2001:0:4136:e378:8000:63bf:3fff:fdd2", Translation | Reserved},
	{"::a00:1", Translation | Reserved | NotGlobalUnicastV6},
	{"::2", Translation | Reserved | NotGlobalUnicastV6},

	// IPv4-mapped: classified as the IPv4 address (defence in depth).
	{"::ffff:127.0.0.1", Loopback},
	{"::ffff:10.0.0.1", Private},
	{"::ffff:169.254.169.254", LinkLocal | Metadata},
	{"::ffff:8.8.8.8", None},
	{"::ffff:0.0.0.0", Unspecified | Reserved},

	// Globally reachable exceptions in 2001::/23.
	{"2001:1::1", None},
	{"2001:1::4", Reserved},
	{"2001:3::1", None},
	{"2001:4:112::1", None},
	{"2001:20::1", Reserved},
	{"2001:30::1", None},
	{"2001:200::1", None}, // first address after 2001::/23

	// IPv6 outside 2000::/3.
	{"1fff:ffff::", NotGlobalUnicastV6},
	{"2000::", None},
	{"3fff:ffff::", None},
	{"4000::", NotGlobalUnicastV6},
	{"8000::1", NotGlobalUnicastV6},

	// Zones are ignored.
	{"fe80::1%eth0", LinkLocal | NotGlobalUnicastV6},
}

func TestClassify(t *testing.T) {
	for _, tt := range classifyTests {
		got := Classify(netip.MustParseAddr(tt.addr))
		if got != tt.want {
			t.Errorf("Classify(%s) = %v, want %v", tt.addr, got, tt.want)
		}
		if slow := classifySlow(netip.MustParseAddr(tt.addr)); slow != got {
			t.Errorf("Classify(%s) = %v, reference %v", tt.addr, got, slow)
		}
	}
	if got := Classify(netip.Addr{}); got != Any {
		t.Errorf("Classify(invalid) = %v, want Any (fail closed)", got)
	}
}

func TestLookup(t *testing.T) {
	bs := Lookup(netip.MustParseAddr("169.254.169.254"))
	if len(bs) != 2 || bs[0].Prefix.String() != "169.254.169.254/32" || bs[1].Prefix.String() != "169.254.0.0/16" {
		t.Fatalf("Lookup(169.254.169.254) = %+v", bs)
	}
	// Lookup is literal: a mapped address matches the mapped block only.
	bs = Lookup(netip.MustParseAddr("::ffff:127.0.0.1"))
	if len(bs) != 2 || bs[0].Prefix != netip.MustParsePrefix("::ffff:0:0/96") || bs[1].Prefix.String() != "::/3" {
		t.Fatalf("Lookup(::ffff:127.0.0.1) = %+v", bs)
	}
	bs = Lookup(netip.MustParseAddr("192.0.0.9"))
	if len(bs) != 2 || !bs[0].Global || bs[1].Global || bs[1].Category != Reserved {
		t.Fatalf("Lookup(192.0.0.9) = %+v", bs)
	}
	if bs := Lookup(netip.MustParseAddr("8.8.8.8")); len(bs) != 0 {
		t.Fatalf("Lookup(8.8.8.8) = %+v", bs)
	}
}

func TestTableSane(t *testing.T) {
	seen := map[netip.Prefix]bool{}
	prev := 129
	for _, blk := range Blocks() {
		if !blk.Prefix.IsValid() || blk.Prefix != blk.Prefix.Masked() {
			t.Errorf("%v: not a masked prefix", blk.Prefix)
		}
		if seen[blk.Prefix] {
			t.Errorf("%v: duplicate", blk.Prefix)
		}
		seen[blk.Prefix] = true
		if blk.Prefix.Bits() > prev {
			t.Errorf("%v: table not sorted most specific first", blk.Prefix)
		}
		prev = blk.Prefix.Bits()
		if blk.Name == "" || blk.Registry == "" {
			t.Errorf("%v: missing name or registry", blk.Prefix)
		}
		if blk.Category == None && !blk.Global {
			t.Errorf("%v: no category and not global", blk.Prefix)
		}
		if blk.Global && !blk.Exclusive {
			t.Errorf("%v: global but not exclusive", blk.Prefix)
		}
	}
}

func TestEmbeddedIPv4(t *testing.T) {
	tests := []struct {
		in, want string // want "" = none
	}{
		{"::ffff:10.0.0.1", "10.0.0.1"},
		{"64:ff9b::10.0.0.1", "10.0.0.1"},
		{"64:ff9b::a9fe:a9fe", "169.254.169.254"},
		// Local-use NAT64, RFC 6052 /48 layout: bits 48-63 and 72-87.
		{"64:ff9b:1:7f00:0:100::", "127.0.0.1"},
		{"64:ff9b:1::7f00:1", "0.0.0.0"},
		{"2002:c0a8:101::1", "192.168.1.1"},
		{"2002:7f00:1::", "127.0.0.1"},
		// Teredo: server 65.54.227.120, client 192.0.2.45 (RFC 4380 example: inverted).
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"},
		{"::10.0.0.1", "10.0.0.1"},
		{"::127.0.0.1", "127.0.0.1"},
		{"::", ""},
		{"::1", ""},
		{"10.0.0.1", ""},
		{"2606:4700::1111", ""},
		{"fe80::1", ""},
	}
	for _, tt := range tests {
		got, ok := EmbeddedIPv4(netip.MustParseAddr(tt.in))
		if tt.want == "" {
			if ok {
				t.Errorf("EmbeddedIPv4(%s) = %v, want none", tt.in, got)
			}
			continue
		}
		if !ok || got != netip.MustParseAddr(tt.want) {
			t.Errorf("EmbeddedIPv4(%s) = %v, %v; want %s", tt.in, got, ok, tt.want)
		}
	}
	// Every address that EmbeddedIPv4 accepts (but mapped) is itself
	// classified Translation, so a policy denying Translation is safe even
	// if it forgets to look inside.
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.in)
		if _, ok := EmbeddedIPv4(a); ok && !a.Is4In6() && !Classify(a).Has(Translation) {
			t.Errorf("%s embeds IPv4 but is not Translation", a)
		}
	}
}

func TestCategoryString(t *testing.T) {
	if s := None.String(); s != "none" {
		t.Errorf("None = %q", s)
	}
	if s := (Loopback | Metadata).String(); s != "loopback|metadata" {
		t.Errorf("got %q", s)
	}
	if s := Category(1 << 31).String(); s != "unknown" {
		t.Errorf("got %q", s)
	}
	for _, n := range CategoryNames() {
		c, ok := ParseCategory(n)
		if !ok || c.String() != n {
			t.Errorf("ParseCategory(%q) = %v, %v", n, c, ok)
		}
	}
	if _, ok := ParseCategory("bogus"); ok {
		t.Error("ParseCategory(bogus) ok")
	}
	all := Category(0)
	for _, n := range CategoryNames() {
		c, _ := ParseCategory(n)
		all |= c
	}
	if all != Any {
		t.Errorf("Any = %v, names cover %v", Any, all)
	}
	if !(Loopback | Private).Has(Private) || (Loopback).Has(Private) || Loopback.Has(None) {
		t.Error("Has")
	}
	if !(Loopback | Private).HasAny(Private | CGNAT) {
		t.Error("HasAny")
	}
}

func FuzzClassify(f *testing.F) {
	for _, tt := range classifyTests {
		a := netip.MustParseAddr(tt.addr)
		b, _ := a.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var a netip.Addr
		if a.UnmarshalBinary(b) != nil {
			return
		}
		c := Classify(a)
		if slow := classifySlow(a); c != slow {
			t.Fatalf("%v: Classify %v, reference %v", a, c, slow)
		}
		checkExplain(t, a.WithZone(""))
		if a.Is4In6() && c != Classify(a.Unmap()) {
			t.Fatalf("%v: mapped classified %v, unmapped %v", a, c, Classify(a.Unmap()))
		}
		if a.Is6() && !a.Is4In6() && !netip.MustParsePrefix("2000::/3").Contains(a.WithZone("")) && !c.Has(NotGlobalUnicastV6) {
			t.Fatalf("%v outside 2000::/3 but %v", a, c)
		}
		if a.IsLoopback() && !c.Has(Loopback) || a.IsPrivate() && !c.Has(Private) ||
			a.IsMulticast() && !c.Has(Multicast) || a.IsLinkLocalUnicast() && !c.Has(LinkLocal) ||
			a.IsUnspecified() && !c.Has(Unspecified) {
			t.Fatalf("%v: %v disagrees with net/netip", a, c)
		}
	})
}

var sink Category

func BenchmarkClassify(b *testing.B) {
	addrs := []netip.Addr{
		netip.MustParseAddr("8.8.8.8"),
		netip.MustParseAddr("169.254.169.254"),
		netip.MustParseAddr("2606:4700::1111"),
		netip.MustParseAddr("fd00:ec2::254"),
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink = Classify(addrs[i%len(addrs)])
	}
}

// BenchmarkClassifyPrefixScan is what Classify replaces: the same
// addresses matched against every block with netip.Prefix.Contains (the
// baseline of Classify's figure in BENCHMARKS.md).
func BenchmarkClassifyPrefixScan(b *testing.B) {
	addrs := []netip.Addr{
		netip.MustParseAddr("8.8.8.8"),
		netip.MustParseAddr("169.254.169.254"),
		netip.MustParseAddr("2606:4700::1111"),
		netip.MustParseAddr("fd00:ec2::254"),
	}
	blocks := Blocks()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a := addrs[i%len(addrs)].Unmap()
		var c Category
		for _, blk := range blocks {
			if blk.Prefix.Contains(a) {
				c |= blk.Category
			}
		}
		sink = c
	}
}

// TestClassifyEdges compares the fast Classify with the netip.Prefix
// reference at both ends of every block and just outside them.
func TestClassifyEdges(t *testing.T) {
	for _, blk := range Blocks() {
		first := blk.Prefix.Addr()
		b := first.AsSlice()
		for i := blk.Prefix.Bits(); i < first.BitLen(); i++ {
			b[i/8] |= 0x80 >> (i % 8)
		}
		last, _ := netip.AddrFromSlice(b)
		for _, a := range []netip.Addr{first, last, first.Prev(), last.Next()} {
			if !a.IsValid() {
				continue
			}
			if got, want := Classify(a), classifySlow(a); got != want {
				t.Errorf("%v (edge of %v): Classify %v, reference %v", a, blk.Prefix, got, want)
			}
		}
		shadowed := false // a more specific exclusive block, like :: in ::/96
		for _, m := range Lookup(first) {
			if m.Prefix == blk.Prefix {
				break
			}
			shadowed = shadowed || m.Exclusive
		}
		if !shadowed && !blk.Global && !first.Is4In6() && !Classify(first).Has(blk.Category) {
			t.Errorf("%v: first address %v lacks %v", blk.Prefix, first, blk.Category)
		}
	}
}

// checkExplain compares Explain with Classify and Lookup, the way the
// special-ranges plugin used to build its reasons.
func checkExplain(t *testing.T, a netip.Addr) {
	t.Helper()
	c, text := Explain(a)
	if want := Classify(a); c != want {
		t.Fatalf("%v: Explain category %v, Classify %v", a, c, want)
	}
	want := ""
	if c != None && a.IsValid() {
		want = c.String() + " (" + Lookup(a.Unmap())[0].Name + ")"
	}
	if text != want {
		t.Fatalf("%v: Explain %q, want %q", a, text, want)
	}
}

// TestExplainEdges checks Explain at both ends of every block and just
// outside them, and on the classification table's examples.
func TestExplainEdges(t *testing.T) {
	for _, tt := range classifyTests {
		checkExplain(t, netip.MustParseAddr(tt.addr))
	}
	for _, blk := range Blocks() {
		first := blk.Prefix.Addr()
		b := first.AsSlice()
		for i := blk.Prefix.Bits(); i < first.BitLen(); i++ {
			b[i/8] |= 0x80 >> (i % 8)
		}
		last, _ := netip.AddrFromSlice(b)
		for _, a := range []netip.Addr{first, last, first.Prev(), last.Next(), first.Next()} {
			if a.IsValid() {
				checkExplain(t, a)
			}
		}
	}
	if c, text := Explain(netip.Addr{}); c != Any || text != "" {
		t.Errorf("invalid address: %v %q", c, text)
	}
	if n := testing.AllocsPerRun(10, func() { Explain(netip.MustParseAddr("198.51.100.10")) }); n != 0 {
		t.Errorf("Explain allocates %v times", n)
	}
}

// TestClassifyEveryFirstOctet sweeps the first and last address of every
// /16 of IPv4 through Classify and Explain: the per-octet index must not
// lose a block.
func TestClassifyEveryFirstOctet(t *testing.T) {
	for o := 0; o < 256; o++ {
		for p := 0; p < 256; p++ {
			for _, a := range []netip.Addr{netip.AddrFrom4([4]byte{byte(o), byte(p), 0, 0}), netip.AddrFrom4([4]byte{byte(o), byte(p), 255, 255})} {
				if got, want := Classify(a), classifySlow(a); got != want {
					t.Fatalf("%v: Classify %v, reference %v", a, got, want)
				}
			}
		}
		checkExplain(t, netip.AddrFrom4([4]byte{byte(o), 0, 0, 0}))
	}
}
