package policy

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/unjuno/flm/core/flmerr"
)

// MaxDocumentBytes bounds a policy document, before and after normalization.
const MaxDocumentBytes = 1 << 20

// MaxRate bounds rpm and burst. It is far above any useful value and keeps
// limiter arithmetic away from overflow.
const MaxRate = 1_000_000

// DefaultDocument is the policy a new store is seeded with: every client IP
// allowed, no cross-origin access, no rate limits.
const DefaultDocument = `{"ip_whitelist":[],"cors":{"allowed_origins":[]}}`

// Document field names.
const (
	fieldIPWhitelist    = "ip_whitelist"
	fieldTrustedProxies = "trusted_proxy_ips"
	fieldClientIPHeader = "client_ip_header"
	fieldCORS           = "cors"
	fieldRateLimit      = "rate_limit"
	fieldIPRateLimit    = "ip_rate_limit"
	fieldOrigins        = "allowed_origins"
	fieldRPM            = "rpm"
	fieldBurst          = "burst"
)

// documentOrder lists the objects that keep fields, in the order Document
// writes them ("" is the top level).
var documentOrder = []string{fieldCORS, fieldRateLimit, fieldIPRateLimit, ""}

// The headers client_ip_header may name.
const (
	HeaderXForwardedFor = "X-Forwarded-For"
	HeaderXRealIP       = "X-Real-IP"
)

// RateLimit is a token bucket: RPM tokens per minute, at most
// EffectiveBurst tokens saved up. RPM 0 turns the limit off.
type RateLimit struct {
	RPM   int `json:"rpm"`
	Burst int `json:"burst,omitempty"`
}

// EffectiveBurst is Burst, or RPM when Burst is unset, so {"rpm": 60} allows
// a minute's worth of requests at once and no more.
func (r RateLimit) EffectiveBurst() int {
	if r.Burst <= 0 {
		return r.RPM
	}
	return r.Burst
}

// CORS is the cors object. AllowedOrigins holds normalized origins
// ("https://app.example", "http://localhost:5173") or "*".
type CORS struct {
	AllowedOrigins []string `json:"allowed_origins"`
}

// Policy is a validated policy document. Parse never returns empty non-nil
// slices, so policies that mean the same compare equal with reflect.DeepEqual.
type Policy struct {
	IPWhitelist     []string
	TrustedProxyIPs []string
	CORS            CORS
	RateLimit       *RateLimit // nil = off
	IPRateLimit     *RateLimit // nil = off
	// ClientIPHeader names the header a trusted proxy sets with the
	// client's address: HeaderXForwardedFor (also when empty) or
	// HeaderXRealIP. X-Real-IP is believed only when named here.
	ClientIPHeader string

	// extra holds the kept, uninterpreted members of every object, in the
	// order Document writes them: x_ extensions, and in a stored document
	// (see Service.Show) fields an earlier FLM kept that this version refuses.
	extra []field
}

// field is a kept member: the object it is in ("" for the top level, else
// the field holding that object), its decoded name and compacted value.
type field struct {
	in, name string
	raw      []byte
}

// Default returns the seed policy, the one DefaultDocument describes.
func Default() Policy { return Policy{} }

func invalid(format string, args ...any) error {
	return flmerr.New(flmerr.PolicyInvalid, format, args...)
}

// Parse validates a whole policy document. Every failure is an
// *flmerr.Error with code POLICY_INVALID whose message names the field and
// the offending value. A field this version does not know is refused, with
// the known field it most likely meant, unless its name starts with "x_".
func Parse(doc []byte) (Policy, error) { return parse(doc, false) }

// parse is Parse; lenient keeps unknown fields instead of refusing them,
// for documents already stored (see Service.Show).
func parse(doc []byte, lenient bool) (Policy, error) {
	if len(doc) > MaxDocumentBytes {
		return Policy{}, invalid("document is %d bytes; the limit is %d", len(doc), MaxDocumentBytes)
	}
	if !utf8.Valid(doc) {
		return Policy{}, invalid("document is not valid UTF-8 (first bad byte at offset %d)", firstInvalidUTF8(doc))
	}
	if len(bytes.TrimLeft(doc, " \t\r\n")) == 0 {
		return Policy{}, invalid("document is empty; the smallest policy is {}")
	}
	root, err := parseDocument(doc)
	if err != nil {
		return Policy{}, invalid("%s", err.Error())
	}
	var p Policy
	var header *member
	for _, m := range root.members {
		switch m.key {
		case fieldIPWhitelist:
			p.IPWhitelist, err = parseIPList(m.key, m.val)
		case fieldTrustedProxies:
			p.TrustedProxyIPs, err = parseIPList(m.key, m.val)
		case fieldClientIPHeader:
			header = &m // read last: it depends on trusted_proxy_ips
		case fieldCORS:
			err = p.parseCORS(m.val, lenient)
		case fieldRateLimit:
			p.RateLimit, err = p.parseRateLimit(m.key, m.val, lenient)
		case fieldIPRateLimit:
			p.IPRateLimit, err = p.parseRateLimit(m.key, m.val, lenient)
		default:
			err = p.keep("", m, lenient)
		}
		if err != nil {
			return Policy{}, err
		}
	}
	if header != nil {
		if p.ClientIPHeader, err = parseHeader(header.val, p.TrustedProxyIPs); err != nil {
			if !lenient {
				return Policy{}, err
			}
			// An earlier FLM kept the field without reading it: X-Forwarded-For
			// stays in charge, as it was, and Policy.ignored reports it.
			p.extra = append(p.extra, field{name: header.key, raw: compact(header.val.raw)})
		}
	}
	// Kept in the order Document writes them, so that Parse(p.Document())
	// equals p: by object, then as given.
	slices.SortStableFunc(p.extra, func(a, b field) int {
		return slices.Index(documentOrder, a.in) - slices.Index(documentOrder, b.in)
	})
	// Document adds the fields DefaultDocument always carries, so a document
	// just under the limit could otherwise be accepted and then stored in a
	// form that no longer parses.
	if n := len(p.Document()); n > MaxDocumentBytes {
		return Policy{}, invalid("document is %d bytes once normalized; the limit is %d", n, MaxDocumentBytes)
	}
	return p, nil
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}

func parseIPList(name string, v value) ([]string, error) {
	if v.kind != kindArray {
		return nil, invalid("%s: must be an array of IP addresses or CIDRs, got %s", name, describe(v))
	}
	var out []string
	for i, el := range v.elems {
		if el.kind != kindString {
			return nil, invalid("%s[%d]: must be a string (an IP address or CIDR), got %s", name, i, describe(el))
		}
		if _, reason := parseIPEntry(el.text); reason != "" {
			return nil, invalid("%s[%d]: %s %s", name, i, quote(el.text), reason)
		}
		out = append(out, el.text)
	}
	return out, nil
}

// parseHeader accepts the two header names in any case (HTTP header names
// are case-insensitive) and returns the canonical spelling. X-Real-IP
// without a trusted proxy is refused: it would do nothing, and the user
// who set it expects it to.
func parseHeader(v value, trusted []string) (string, error) {
	if v.kind == kindString && strings.EqualFold(v.text, HeaderXForwardedFor) {
		return HeaderXForwardedFor, nil
	}
	if v.kind != kindString || !strings.EqualFold(v.text, HeaderXRealIP) {
		return "", invalid(`client_ip_header: must be "X-Forwarded-For" or "X-Real-IP", got %s`, describe(v))
	}
	if len(trusted) == 0 {
		return "", invalid(`client_ip_header: "X-Real-IP" is read only from a peer listed in trusted_proxy_ips, which is empty; ` +
			`add the address of the reverse proxy that sets it`)
	}
	return HeaderXRealIP, nil
}

func (p *Policy) parseCORS(v value, lenient bool) error {
	if v.kind != kindObject {
		return invalid(`cors: must be an object like {"allowed_origins": ["https://app.example"]}, got %s`, describe(v))
	}
	for _, m := range v.members {
		if m.key != fieldOrigins {
			if err := p.keep(fieldCORS, m, lenient); err != nil {
				return err
			}
			continue
		}
		if m.val.kind != kindArray {
			return invalid(`cors.allowed_origins: must be an array of origins ("https://host[:port]") or ["*"], got %s`, describe(m.val))
		}
		for i, el := range m.val.elems {
			if el.kind != kindString {
				return invalid("cors.allowed_origins[%d]: must be a string, got %s", i, describe(el))
			}
			if el.text == "*" {
				p.CORS.AllowedOrigins = append(p.CORS.AllowedOrigins, "*")
				continue
			}
			norm, reason := normalizeOrigin(el.text)
			if reason != "" {
				return invalid("cors.allowed_origins[%d]: %s is not an origin (scheme://host[:port] or \"*\"): %s", i, quote(el.text), reason)
			}
			p.CORS.AllowedOrigins = append(p.CORS.AllowedOrigins, norm)
		}
	}
	return nil
}

func (p *Policy) parseRateLimit(name string, v value, lenient bool) (*RateLimit, error) {
	if v.kind != kindObject {
		return nil, invalid(`%s: must be an object like {"rpm": 60, "burst": 10}, got %s`, name, describe(v))
	}
	var rl RateLimit
	hasRPM := false
	for _, m := range v.members {
		var dst *int
		switch m.key {
		case fieldRPM:
			dst, hasRPM = &rl.RPM, true
		case fieldBurst:
			dst = &rl.Burst
		default:
			if err := p.keep(name, m, lenient); err != nil {
				return nil, err
			}
			continue
		}
		n, ok := parseRate(m.val)
		if !ok {
			return nil, invalid("%s.%s: must be an integer between 0 and %d, got %s", name, m.key, MaxRate, describe(m.val))
		}
		*dst = n
	}
	if !hasRPM {
		return nil, invalid("%s.rpm: required (requests per minute; 0 turns the limit off)", name)
	}
	return &rl, nil
}

// parseRate accepts only a plain integer literal: 1e3 and 60.0 are exact
// integers, but accepting them would invite 1.5 and 1e400 to be "rounded".
func parseRate(v value) (int, bool) {
	if v.kind != kindNumber || len(v.text) > len(strconv.Itoa(MaxRate)) {
		return 0, false
	}
	for i := 0; i < len(v.text); i++ {
		if c := v.text[i]; c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(v.text)
	if err != nil || n > MaxRate {
		return 0, false
	}
	return n, true
}

// Validate reports whether p, which may have been built in code rather than
// by Parse, is a policy Parse would accept. For a policy Service.Show loaded
// from a document an earlier FLM stored, it names the first field this
// version refuses.
func (p Policy) Validate() error {
	_, err := Parse(p.Document())
	return err
}

// Document returns p as compact JSON: the known fields in a fixed order,
// each object's kept fields after its known ones, in their original order.
// For a Policy from Parse, Parse(p.Document()) returns an equal Policy and
// Document is a fixed point.
func (p Policy) Document() []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"ip_whitelist":`...)
	b = appendStrings(b, p.IPWhitelist)
	if len(p.TrustedProxyIPs) > 0 {
		b = append(b, `,"trusted_proxy_ips":`...)
		b = appendStrings(b, p.TrustedProxyIPs)
	}
	if p.ClientIPHeader != "" {
		b = append(b, `,"client_ip_header":`...)
		b = appendJSON(b, p.ClientIPHeader)
	}
	b = append(b, `,"cors":{"allowed_origins":`...)
	b = appendStrings(b, p.CORS.AllowedOrigins)
	b = p.appendExtra(b, fieldCORS)
	b = append(b, '}')
	b = p.appendRateLimit(b, fieldRateLimit, p.RateLimit)
	b = p.appendRateLimit(b, fieldIPRateLimit, p.IPRateLimit)
	b = p.appendExtra(b, "")
	return append(b, '}')
}

// MarshalJSON returns Document, so a Policy embedded in other JSON (CLI
// output) shows the document itself.
func (p Policy) MarshalJSON() ([]byte, error) { return p.Document(), nil }

// UnmarshalJSON applies Parse, so decoding a Policy can never bypass
// validation.
func (p *Policy) UnmarshalJSON(b []byte) error {
	q, err := Parse(b)
	if err != nil {
		return err
	}
	*p = q
	return nil
}

func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "[]"...)
	}
	return appendJSON(b, ss)
}

func (p Policy) appendExtra(b []byte, in string) []byte {
	for _, f := range p.extra {
		if f.in == in {
			b = append(b, ',')
			b = appendJSON(b, f.name)
			b = append(b, ':')
			b = append(b, f.raw...)
		}
	}
	return b
}

func (p Policy) appendRateLimit(b []byte, name string, r *RateLimit) []byte {
	if r == nil {
		return b
	}
	b = append(b, `,"`+name+`":{"rpm":`...)
	b = strconv.AppendInt(b, int64(r.RPM), 10)
	if r.Burst != 0 {
		b = append(b, `,"burst":`...)
		b = strconv.AppendInt(b, int64(r.Burst), 10)
	}
	b = p.appendExtra(b, name)
	return append(b, '}')
}
