package policy

import (
	"net/netip"
	"slices"
)

// maxOriginLen bounds the Origin header values worth normalizing on a miss;
// a real origin is far shorter, and a hostile one should not cost work.
const maxOriginLen = 2048

// Compiled is a Policy precomputed for the request path. It is immutable
// and safe for concurrent use; a reload builds a new one and swaps the
// pointer. A nil *Compiled denies every client IP and origin, trusts no
// proxy and reports no limits: a proxy that lost its policy fails closed.
type Compiled struct {
	restrictIPs bool // set even when no entry compiled, so bad entries deny rather than open
	whitelist   ipSet
	trusted     ipSet

	anyOrigin bool
	origins   map[string]struct{}

	keyLimit, ipLimit RateLimit
	keyOn, ipOn       bool
	realIP            bool // client_ip_header is X-Real-IP
}

// ipSet answers "is this address in one of these prefixes" with one map
// lookup per distinct prefix length instead of a scan of every entry, so a
// 10,000-entry whitelist costs what a short one does.
type ipSet struct {
	lens4, lens6 []int
	prefixes     map[netip.Prefix]struct{}
}

func newIPSet(entries []string) ipSet {
	s := ipSet{prefixes: make(map[netip.Prefix]struct{}, len(entries))}
	for _, e := range entries {
		p, reason := parseIPEntry(e)
		if reason != "" {
			continue // only a hand-built Policy gets here; it matches nothing
		}
		s.prefixes[p] = struct{}{}
		if p.Addr().Is4() {
			s.lens4 = appendUnique(s.lens4, p.Bits())
		} else {
			s.lens6 = appendUnique(s.lens6, p.Bits())
		}
	}
	// Longest first: single addresses are the most common entries.
	slices.Sort(s.lens4)
	slices.Reverse(s.lens4)
	slices.Sort(s.lens6)
	slices.Reverse(s.lens6)
	return s
}

func appendUnique(s []int, n int) []int {
	if slices.Contains(s, n) {
		return s
	}
	return append(s, n)
}

func (s *ipSet) contains(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	// netip.Prefix.Contains never matches a zoned or 4in6 address; clients
	// on link-local IPv6 or behind a dual-stack socket must still match.
	a = a.Unmap().WithZone("")
	lens := s.lens6
	if a.Is4() {
		lens = s.lens4
	}
	for _, n := range lens {
		p, _ := a.Prefix(n)
		if _, ok := s.prefixes[p]; ok {
			return true
		}
	}
	return false
}

// Compile precomputes p. Entries that do not parse (possible only in a
// Policy built by hand; see Validate) match nothing, and a whitelist made
// only of such entries denies everyone rather than allowing everyone.
func (p Policy) Compile() *Compiled {
	c := &Compiled{
		restrictIPs: len(p.IPWhitelist) > 0,
		whitelist:   newIPSet(p.IPWhitelist),
		trusted:     newIPSet(p.TrustedProxyIPs),
		origins:     make(map[string]struct{}, len(p.CORS.AllowedOrigins)),
	}
	for _, o := range p.CORS.AllowedOrigins {
		if o == "*" {
			c.anyOrigin = true
			continue
		}
		if n, reason := normalizeOrigin(o); reason == "" {
			c.origins[n] = struct{}{}
		}
	}
	c.realIP = p.ClientIPHeader == HeaderXRealIP
	if r := p.RateLimit; r != nil && r.RPM > 0 {
		c.keyLimit, c.keyOn = *r, true
	}
	if r := p.IPRateLimit; r != nil && r.RPM > 0 {
		c.ipLimit, c.ipOn = *r, true
	}
	return c
}

// AllowsIP reports whether a client at addr may connect. An empty whitelist
// allows every client.
func (c *Compiled) AllowsIP(addr netip.Addr) bool {
	if c == nil {
		return false
	}
	return !c.restrictIPs || c.whitelist.contains(addr)
}

// IsTrustedProxy reports whether the peer at addr is a proxy whose
// X-Forwarded-For / X-Real-IP headers may be believed.
func (c *Compiled) IsTrustedProxy(addr netip.Addr) bool {
	return c != nil && c.trusted.contains(addr)
}

// RealIPHeader reports whether a trusted proxy's X-Real-IP names the client
// (policy client_ip_header "X-Real-IP"); otherwise X-Forwarded-For does, and
// X-Real-IP is ignored.
func (c *Compiled) RealIPHeader() bool { return c != nil && c.realIP }

// AllowsOrigin reports whether a browser page from origin (the Origin
// header's value) may call the API. Matching is exact on the normalized
// form, so "https://app.example.evil.test" never matches
// "https://app.example". The empty string is not an origin.
func (c *Compiled) AllowsOrigin(origin string) bool {
	if c == nil || origin == "" {
		return false
	}
	if c.anyOrigin {
		return true
	}
	if _, ok := c.origins[origin]; ok {
		return true // browsers send the normalized form; no work, no allocation
	}
	if len(c.origins) == 0 || len(origin) > maxOriginLen {
		return false
	}
	n, reason := normalizeOrigin(origin)
	if reason != "" {
		return false
	}
	_, ok := c.origins[n]
	return ok
}

// AllowsAnyOrigin reports whether the policy contains "*".
func (c *Compiled) AllowsAnyOrigin() bool { return c != nil && c.anyOrigin }

// KeyLimit returns the per-API-key rate limit, and false when there is none.
func (c *Compiled) KeyLimit() (RateLimit, bool) {
	if c == nil {
		return RateLimit{}, false
	}
	return c.keyLimit, c.keyOn
}

// IPLimit returns the per-client-IP rate limit, and false when there is none.
func (c *Compiled) IPLimit() (RateLimit, bool) {
	if c == nil {
		return RateLimit{}, false
	}
	return c.ipLimit, c.ipOn
}
