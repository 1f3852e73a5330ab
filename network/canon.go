package network

import (
	"errors"
	"net/netip"
	"strconv"
	"syscall"
)

// ErrInvalidName is matched (errors.Is) by the error CanonicalName returns
// for a string that is not an acceptable DNS name. Those errors also match
// syscall.EINVAL.
var ErrInvalidName = errors.New("invalid DNS name")

// ErrInvalidAddr is matched (errors.Is) by the error CanonicalAddr returns.
// Those errors also match syscall.EINVAL.
var ErrInvalidAddr = errors.New("invalid address")

type canonError struct {
	kind   error // ErrInvalidName or ErrInvalidAddr
	input  string
	reason string
}

func (e *canonError) Error() string {
	return e.kind.Error() + " " + strconv.Quote(e.input) + ": " + e.reason
}

func (e *canonError) Is(target error) bool {
	return target == e.kind || target == syscall.EINVAL
}

// Unwrap gives syscall.EINVAL, so that errno mapping sees it directly.
func (e *canonError) Unwrap() error { return syscall.EINVAL }

// MaxNameLen is the longest name CanonicalName accepts, in bytes, without
// the trailing dot (RFC 1035: 255 octets on the wire is 253 as text).
const MaxNameLen = 253

// MaxLabelLen is the longest label (RFC 1035).
const MaxLabelLen = 63

// CanonicalAddr returns the form of a that policy sees and that the host
// dials: an IPv4-mapped IPv6 address becomes the IPv4 address. It rejects
// the zero Addr and any address with a zone (scope id), because a zone
// selects an interface that the policy cannot see; both errors wrap
// syscall.EINVAL. The result of CanonicalAddr is a fixed point.
func CanonicalAddr(a netip.Addr) (netip.Addr, error) {
	if !a.IsValid() {
		return netip.Addr{}, &canonError{ErrInvalidAddr, "", "not an IP address"}
	}
	if a.Zone() != "" {
		return netip.Addr{}, &canonError{ErrInvalidAddr, a.String(), "zoned (scoped) addresses are not allowed"}
	}
	return a.Unmap(), nil
}

// CanonicalAddrPort is CanonicalAddr for the address of ap; the port is kept.
func CanonicalAddrPort(ap netip.AddrPort) (netip.AddrPort, error) {
	a, err := CanonicalAddr(ap.Addr())
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, ap.Port()), nil
}

// IsIPLiteral reports whether s is an IP address in strict net/netip
// syntax (dotted-quad IPv4, or IPv6 possibly with a zone). An IP literal is
// not a name: resolving it gives itself and creates no name binding.
func IsIPLiteral(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// CanonicalName returns the canonical form of a DNS host name as policy
// sees it: lower-case ASCII, without one trailing dot. It rejects:
//
//   - the empty name, the root ".", empty labels ("a..b", ".a", "a.."),
//     labels longer than 63 bytes and names longer than 253 bytes;
//   - NUL, control characters, spaces and every other byte outside
//     letters, digits, '-' and '_';
//   - non-ASCII: internationalised names must arrive as punycode
//     ("xn--..."), converting them is the guest's job;
//   - labels that begin or end with '-';
//   - names whose last label is numeric ("127.1", "1.2.3.4.", "0x7f.1"):
//     no top-level domain is numeric (RFC 3696 §2), and some resolvers
//     read such strings as IPv4 addresses in inet_aton's lax syntax, which
//     would let an address hide from policy as a "name". IP literals are
//     recognised separately (IsIPLiteral) before names are canonicalised.
//
// '_' is accepted anywhere in a label: DNS itself allows any byte, service
// names such as "_sip._udp.example.com" need it, and some real host names
// carry it. It cannot be confused with anything a policy pattern uses.
//
// The result is a fixed point: CanonicalName(CanonicalName(s)) gives the
// same string. Errors wrap ErrInvalidName and syscall.EINVAL.
func CanonicalName(s string) (string, error) {
	if len(s) > 0 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	if s == "" {
		return "", &canonError{ErrInvalidName, s, "empty name"}
	}
	if len(s) > MaxNameLen {
		return "", &canonError{ErrInvalidName, s, "longer than 253 bytes"}
	}
	// One pass to validate and to learn whether a copy is needed.
	upper := false
	labelStart := 0
	last := ""
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			l := s[labelStart:i]
			switch {
			case len(l) == 0:
				return "", &canonError{ErrInvalidName, s, "empty label"}
			case len(l) > MaxLabelLen:
				return "", &canonError{ErrInvalidName, s, "label longer than 63 bytes"}
			case l[0] == '-' || l[len(l)-1] == '-':
				return "", &canonError{ErrInvalidName, s, "label begins or ends with '-'"}
			}
			labelStart = i + 1
			last = l
			continue
		}
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case 'A' <= c && c <= 'Z':
			upper = true
		case c >= 0x80:
			return "", &canonError{ErrInvalidName, s, "non-ASCII (use punycode)"}
		default:
			return "", &canonError{ErrInvalidName, s, "invalid character " + strconv.QuoteRune(rune(c))}
		}
	}
	if numericLabel(last) {
		return "", &canonError{ErrInvalidName, s, "numeric top-level label (an address, not a name)"}
	}
	if !upper {
		return s, nil
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b), nil
}

// numericLabel reports whether l reads as a number in inet_aton's syntax:
// decimal, octal (leading 0) or hexadecimal (0x...). l may be upper case.
func numericLabel(l string) bool {
	if len(l) > 1 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		for i := 2; i < len(l); i++ {
			c := l[i] | 0x20
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}
