package policy

import (
	"net/netip"
	"strconv"
	"strings"
)

// parseIPEntry turns an ip_whitelist / trusted_proxy_ips entry into the
// prefix it covers, or says why it is not one. Host bits are dropped
// (192.168.1.7/24 means 192.168.1.0/24, as most firewalls read it), and
// IPv4-mapped entries become IPv4 because client addresses are unmapped
// before matching.
func parseIPEntry(s string) (netip.Prefix, string) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, "has an IPv6 zone; zones are not allowed"
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, "is not an IP address or CIDR"
		}
		p = p.Masked()
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p, ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, "is not an IP address or CIDR"
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), ""
}

// normalizeOrigin returns the serialized form a browser sends in an Origin
// header for s (lower-case scheme and host, default port dropped, IPv6 in
// canonical form), or the reason s is not an origin.
func normalizeOrigin(s string) (string, string) {
	i := strings.Index(s, "://")
	if i < 0 {
		return "", `must look like scheme://host[:port]`
	}
	var scheme, defaultPort string
	switch {
	case strings.EqualFold(s[:i], "http"):
		scheme, defaultPort = "http", "80"
	case strings.EqualFold(s[:i], "https"):
		scheme, defaultPort = "https", "443"
	default:
		return "", "the scheme must be http or https"
	}
	rest := s[i+3:]
	if strings.ContainsAny(rest, "/?#") {
		return "", `an origin has no path, query or fragment (not even a trailing "/")`
	}
	if strings.Contains(rest, "@") {
		return "", "an origin has no user info"
	}
	var host, port string
	hasPort := false
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", "the IPv6 address is missing its closing ']'"
		}
		a, err := netip.ParseAddr(rest[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", "the host is not a valid IPv6 address"
		}
		host = "[" + ipv6Origin(a) + "]"
		if after := rest[end+1:]; after != "" {
			if after[0] != ':' {
				return "", "unexpected characters after the IPv6 address"
			}
			port, hasPort = after[1:], true
		}
	} else {
		host = rest
		if j := strings.LastIndexByte(rest, ':'); j >= 0 {
			host, port, hasPort = rest[:j], rest[j+1:], true
		}
		if reason := checkHost(host); reason != "" {
			return "", reason
		}
		host = strings.ToLower(host)
	}
	if hasPort {
		if reason := checkPort(port); reason != "" {
			return "", reason
		}
		if port == defaultPort {
			hasPort = false
		}
	}
	if !hasPort {
		return scheme + "://" + host, ""
	}
	return scheme + "://" + host + ":" + port, ""
}

// ipv6Origin serializes an IPv6 address as the WHATWG URL standard does,
// which differs from netip only for IPv4-mapped addresses (hex, not dotted).
func ipv6Origin(a netip.Addr) string {
	if !a.Is4In6() {
		return a.String()
	}
	b := a.As16()
	return "::ffff:" + strconv.FormatUint(uint64(b[12])<<8|uint64(b[13]), 16) + ":" +
		strconv.FormatUint(uint64(b[14])<<8|uint64(b[15]), 16)
}

// checkHost accepts ASCII host names and dotted IPv4 addresses. Browsers
// send internationalized names in their xn-- form, and read a name whose
// last label is numeric as an IPv4 address (127.1, 0x7f.0.0.1), so such a
// name must be a plain dotted quad to mean the same thing here.
func checkHost(h string) string {
	if h == "" {
		return "the host is empty"
	}
	if len(h) > 253 {
		return "the host is longer than 253 characters"
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c == '-' || c == '.' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case c >= 0x80:
			return "the host must be ASCII; write an internationalized name in its xn-- form"
		default:
			return "the host contains " + strconv.QuoteRune(rune(c))
		}
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" {
			return "the host has an empty label"
		}
	}
	last := labels[len(labels)-1]
	if isDigits(last) || strings.HasPrefix(last, "0x") || strings.HasPrefix(last, "0X") {
		if a, err := netip.ParseAddr(h); err != nil || !a.Is4() {
			return "the host is not a valid IPv4 address"
		}
	}
	return ""
}

func checkPort(p string) string {
	if p == "" {
		return "the port is empty"
	}
	if !isDigits(p) || p[0] == '0' || len(p) > 5 {
		return "the port must be a number between 1 and 65535"
	}
	if n, _ := strconv.Atoi(p); n > 65535 {
		return "the port must be a number between 1 and 65535"
	}
	return ""
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
