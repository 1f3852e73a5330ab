package network

import (
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
)

var canonicalAddrTests = []struct {
	in   string
	want string // "" = error
}{
	{"127.0.0.1", "127.0.0.1"},
	{"::ffff:127.0.0.1", "127.0.0.1"},
	{"::ffff:10.0.0.1", "10.0.0.1"},
	{"::ffff:0.0.0.0", "0.0.0.0"},
	{"0.0.0.0", "0.0.0.0"},
	{"::", "::"},
	{"::1", "::1"},
	{"::10.0.0.1", "::a00:1"}, // IPv4-compatible stays IPv6: classification catches it
	{"64:ff9b::10.0.0.1", "64:ff9b::a00:1"},
	{"2002:a00:1::1", "2002:a00:1::1"},
	{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:0:4136:e378:8000:63bf:3fff:fdd2"},
	{"fd00:ec2::254", "fd00:ec2::254"},
	{"169.254.169.254", "169.254.169.254"},
	{"FE80::1", "fe80::1"},
	{"fe80::1%eth0", ""},
	{"fe80::1%1", ""},
	{"::ffff:127.0.0.1%lo", ""},
}

func TestCanonicalAddr(t *testing.T) {
	for _, tt := range canonicalAddrTests {
		got, err := CanonicalAddr(netip.MustParseAddr(tt.in))
		if tt.want == "" {
			if err == nil {
				t.Errorf("CanonicalAddr(%s) = %v, want error", tt.in, got)
			} else if !errors.Is(err, syscall.EINVAL) || !errors.Is(err, ErrInvalidAddr) {
				t.Errorf("CanonicalAddr(%s) error %v does not match EINVAL and ErrInvalidAddr", tt.in, err)
			}
			continue
		}
		if err != nil || got != netip.MustParseAddr(tt.want) {
			t.Errorf("CanonicalAddr(%s) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	if _, err := CanonicalAddr(netip.Addr{}); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("CanonicalAddr(zero) error = %v", err)
	}
	ap, err := CanonicalAddrPort(netip.MustParseAddrPort("[::ffff:192.0.2.1]:443"))
	if err != nil || ap != netip.MustParseAddrPort("192.0.2.1:443") {
		t.Errorf("CanonicalAddrPort = %v, %v", ap, err)
	}
	if _, err := CanonicalAddrPort(netip.MustParseAddrPort("[fe80::1%eth0]:443")); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("CanonicalAddrPort(zoned) error = %v", err)
	}
}

var canonicalNameTests = []struct {
	in   string
	want string // "" = error
}{
	{"example.com", "example.com"},
	{"Example.COM.", "example.com"},
	{"api.example.test", "api.example.test"},
	{"localhost", "localhost"},
	{"a", "a"},
	{"xn--bcher-kva.example", "xn--bcher-kva.example"},
	{"_sip._udp.example.com", "_sip._udp.example.com"},
	{"my_host.example", "my_host.example"},
	{"a-b.c-d", "a-b.c-d"},
	{"1.example", "1.example"},
	{"123.456.example", "123.456.example"},
	{"example.com..", ""}, // only one trailing dot is stripped
	{"", ""},
	{".", ""},
	{"..", ""},
	{".example.com", ""},
	{"a..b", ""},
	{"exa mple.com", ""},
	{"exa\x00mple.com", ""},
	{"example.com\x00", ""},
	{"exa\tmple.com", ""},
	{"exa\x7fmple.com", ""},
	{"bücher.example", ""},
	{"exa*mple.com", ""},
	{"*.example.com", ""},
	{"example.com:80", ""},
	{"[::1]", ""},
	{"::1", ""},
	{"a/b", ""},
	{"-a.example", ""},
	{"a-.example", ""},
	{"127.1", ""},
	{"1.2.3.4", ""},
	{"1.2.3.4.", ""},
	{"0x7f.1", ""},
	{"0x7f000001", ""},
	{"2130706433", ""},
	{"example.0x", ""},
	{"example.0xg", "example.0xg"},
	{strings.Repeat("a", 63) + ".example", strings.Repeat("a", 63) + ".example"},
	{strings.Repeat("a", 64) + ".example", ""},
	// 253 bytes is the limit, with or without the trailing dot.
	{name253(), name253()},
	{name253() + ".", name253()},
	{name253() + "a", ""},
}

func name253() string {
	l := strings.Repeat("a", 62) + "."
	return l + l + l + l + strings.Repeat("b", 253-4*len(l))
}

func TestCanonicalName(t *testing.T) {
	if len(name253()) != 253 {
		t.Fatal("name253 is not 253 bytes")
	}
	for _, tt := range canonicalNameTests {
		got, err := CanonicalName(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("CanonicalName(%q) = %q, want error", tt.in, got)
			} else if !errors.Is(err, ErrInvalidName) || !errors.Is(err, syscall.EINVAL) {
				t.Errorf("CanonicalName(%q) error %v does not match ErrInvalidName and EINVAL", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CanonicalName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestIsIPLiteral(t *testing.T) {
	for s, want := range map[string]bool{
		"127.0.0.1": true, "::1": true, "fe80::1%eth0": true, "::ffff:1.2.3.4": true,
		"127.1": false, "example.com": false, "[::1]": false, "1.2.3.4.": false, "": false,
		"01.2.3.4": false, "0x7f.0.0.1": false,
	} {
		if got := IsIPLiteral(s); got != want {
			t.Errorf("IsIPLiteral(%q) = %v", s, got)
		}
	}
}

func FuzzCanonicalName(f *testing.F) {
	for _, tt := range canonicalNameTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := CanonicalName(s)
		if err != nil {
			if c != "" {
				t.Fatalf("error with output %q", c)
			}
			return
		}
		// Idempotent.
		c2, err := CanonicalName(c)
		if err != nil || c2 != c {
			t.Fatalf("CanonicalName(%q) = %q, again %q, %v", s, c, c2, err)
		}
		// Output valid: lower-case LDH or '_', dot-separated, bounded.
		if len(c) == 0 || len(c) > MaxNameLen || strings.HasSuffix(c, ".") {
			t.Fatalf("bad length or trailing dot: %q", c)
		}
		for _, l := range strings.Split(c, ".") {
			if len(l) == 0 || len(l) > MaxLabelLen || l[0] == '-' || l[len(l)-1] == '-' {
				t.Fatalf("bad label %q in %q", l, c)
			}
			for i := 0; i < len(l); i++ {
				ch := l[i]
				if !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '_') {
					t.Fatalf("bad byte %q in %q", ch, c)
				}
			}
		}
		if IsIPLiteral(c) {
			t.Fatalf("%q canonicalised to an IP literal", s)
		}
		// Case-insensitive: the upper-case input gives the same name.
		if c3, err := CanonicalName(strings.ToUpper(s)); err != nil || c3 != c {
			t.Fatalf("upper-case %q: %q, %v", s, c3, err)
		}
	})
}

func FuzzCanonicalAddr(f *testing.F) {
	for _, tt := range canonicalAddrTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return
		}
		c, err := CanonicalAddr(a)
		if err != nil {
			if a.Zone() == "" {
				t.Fatalf("%v rejected: %v", a, err)
			}
			return
		}
		if a.Zone() != "" {
			t.Fatalf("zoned %v accepted as %v", a, c)
		}
		if c.Is4In6() || c.Zone() != "" || !c.IsValid() {
			t.Fatalf("%v -> non-canonical %v", a, c)
		}
		if c2, err := CanonicalAddr(c); err != nil || c2 != c {
			t.Fatalf("not idempotent: %v -> %v -> %v, %v", a, c, c2, err)
		}
		if c != a.Unmap() {
			t.Fatalf("%v -> %v, want %v", a, c, a.Unmap())
		}
	})
}

var nameSink string

func BenchmarkCanonicalName(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		nameSink, _ = CanonicalName("api.example.test")
	}
}

func BenchmarkCanonicalNameUpper(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		nameSink, _ = CanonicalName("API.Example.TEST.")
	}
}
