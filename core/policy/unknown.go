package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// ExtensionPrefix starts the name of every field the policy keeps without
// knowing it, at any level. Any other unknown name is refused: a misspelled
// "ip_whitelist" must not leave the proxy open.
const ExtensionPrefix = "x_"

// object lists what one object of the document may hold, for the messages
// about the names it may not.
type object struct {
	known []string
	// synonyms maps a squashed name people write for a field to the field,
	// or to its path when it belongs in another object.
	synonyms map[string]string
}

var (
	topObject = object{
		known: []string{fieldIPWhitelist, fieldTrustedProxies, fieldClientIPHeader, fieldCORS, fieldRateLimit, fieldIPRateLimit},
		synonyms: synonyms(map[string][]string{
			fieldIPWhitelist: {"whitelist", "allowlist", "ipallowlist", "ipallowedlist", "allowedips", "allowips",
				"ipsallowed", "allowedip", "ipallow", "allowedclients", "allowedaddresses", "ipfilter", "ips"},
			fieldTrustedProxies: {"trustedproxies", "trustedproxy", "trustedproxyip", "trustedips", "proxies",
				"proxyips", "trustedhops", "realipfrom", "setrealipfrom", "forwardedallowips"},
			fieldClientIPHeader: {"realipheader", "ipheader", "clientheader", "forwardedheader", "forwardedforheader",
				"proxyheader", "remoteipheader", "trustedheader", "xforwardedfor", "xrealip"},
			"cors.allowed_origins": {"origins", "origin", "allowedorigins", "alloworigins", "allowedorigin",
				"corsorigins", "corsallowedorigins", "accesscontrolalloworigin"},
			fieldRateLimit: {"ratelimits", "keyratelimit", "apikeyratelimit", "perkeyratelimit", "limit",
				"limits", "throttle"},
			fieldIPRateLimit:   {"ipratelimits", "iplimit", "peripratelimit", "periplimit", "clientratelimit"},
			"rate_limit.rpm":   {"rpm", "requestsperminute"},
			"rate_limit.burst": {"burst"},
		}),
	}
	corsObject = object{
		known: []string{fieldOrigins},
		synonyms: synonyms(map[string][]string{
			fieldOrigins: {"origins", "origin", "alloworigins", "alloworigin", "corsorigins",
				"accesscontrolalloworigin", "domains", "alloweddomains", "hosts", "allowedhosts"},
		}),
	}
	rateObject = object{
		known: []string{fieldRPM, fieldBurst},
		synonyms: synonyms(map[string][]string{
			fieldRPM:   {"requestsperminute", "reqperminute", "perminute", "rateperminute", "rate", "requests", "limit"},
			fieldBurst: {"burstsize", "maxburst", "bucket", "bucketsize", "capacity"},
		}),
	}
	objects = map[string]*object{"": &topObject, fieldCORS: &corsObject, fieldRateLimit: &rateObject, fieldIPRateLimit: &rateObject}
)

func synonyms(bySuggestion map[string][]string) map[string]string {
	m := make(map[string]string)
	for s, names := range bySuggestion {
		for _, n := range names {
			m[n] = s
		}
	}
	return m
}

// keep handles a member of the object in ("" for the top level) that is not
// one of its known fields. An extension is kept. Any other name is refused,
// or kept when lenient (a stored document; Policy.ignored reports it). A
// name that differs from a known one only in case is refused even then:
// encoding/json would take it for the known field, this package would not,
// and the two readings must never differ.
func (p *Policy) keep(in string, m member, lenient bool) error {
	if !strings.HasPrefix(m.key, ExtensionPrefix) {
		if err := caseVariant(in, m.key); err != nil {
			return err
		}
		if !lenient {
			msg, hint := unknownField(in, m.key)
			return invalid("%s; %s", msg, hint)
		}
	}
	p.extra = append(p.extra, field{in: in, name: m.key, raw: compact(m.val.raw)})
	return nil
}

func compact(raw []byte) []byte {
	var buf bytes.Buffer
	_ = json.Compact(&buf, raw) // raw is valid JSON
	return buf.Bytes()
}

func where(in string) string {
	if in == "" {
		return ""
	}
	return in + ": "
}

func caseVariant(in, key string) error {
	for _, k := range objects[in].known {
		if strings.EqualFold(key, k) {
			return invalid("%sunknown field %s: keys are case-sensitive; did you mean %q?", where(in), quote(key), k)
		}
	}
	return nil
}

// unknownField says that key is not a field of the object in and, as hint,
// which field it most likely meant.
func unknownField(in, key string) (msg, hint string) {
	o := objects[in]
	msg = where(in) + "unknown field " + quote(key)
	if s := o.suggest(key); s != "" {
		return msg, "did you mean " + quote(s) + "?"
	}
	return msg, "the known fields are " + strings.Join(o.known, ", ") + ` (extension fields start with "` + ExtensionPrefix + `")`
}

// suggest returns the field (or path) key most likely meant, or "": a
// synonym people write, an extension spelled x- or X_, or the known field
// nearest by edit distance once case, '_', '-', '.' and spaces are ignored.
func (o *object) suggest(key string) string {
	k := squash(key)
	if s, ok := o.synonyms[k]; ok {
		return s
	}
	if len(key) > len(ExtensionPrefix) && strings.EqualFold(key[:1], "x") && (key[1] == '-' || key[1] == '_') {
		return ExtensionPrefix + key[2:]
	}
	best, bestD := "", 0
	for _, f := range o.known {
		sf := squash(f)
		if d := distance(k, sf); d <= max(1, len(sf)/4) && (best == "" || d < bestD) {
			best, bestD = f, d
		}
	}
	return best
}

func squash(s string) string {
	if len(s) > maxEcho {
		return "" // no field name is this long; do not spend work on it
	}
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune("_-. ", r) {
			return -1
		}
		return r
	}, strings.ToLower(s))
}

// distance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of adjacent bytes.
func distance(a, b string) int {
	if a == "" {
		return len(b) + len(a) + maxEcho // never close
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// ignored describes the kept fields of p that are not extensions. Only a
// document stored by an earlier FLM, which kept every field it did not
// know, has them; Service.Show loads such a document only when each of them
// is tolerated (see failClosed), and enforces it without them, as that FLM
// did.
func (p Policy) ignored() []string {
	var out []string
	for _, f := range p.extra {
		if !strings.HasPrefix(f.name, ExtensionPrefix) {
			out = append(out, describeIgnored(f)+" is ignored (an earlier FLM stored it; fix the policy with `flm security policy set`); "+hintIgnored(f))
		}
	}
	return out
}

// describeIgnored names an ignored field for a message.
func describeIgnored(f field) string {
	if f.in == "" && f.name == fieldClientIPHeader { // known now, with a value this version refuses
		return fieldClientIPHeader + " " + cut(string(f.raw))
	}
	msg, _ := unknownField(f.in, f.name)
	return msg
}

func hintIgnored(f field) string {
	if f.in == "" && f.name == fieldClientIPHeader {
		return `it must be "X-Forwarded-For" or "X-Real-IP", and "X-Real-IP" needs trusted_proxy_ips`
	}
	_, hint := unknownField(f.in, f.name)
	return hint
}

// maxNamed bounds the fields one failClosed message names.
const maxNamed = 3

// failClosed is the rule for the fields an earlier FLM stored that this one
// does not enforce (Policy.extra, outside extensions). Such a field is
// tolerated, and only reported, when ignoring it can leave the gateway
// stricter or as strict as its author meant, whatever the author meant:
//
//   - any field inside cors: FLM grants cross-origin access only through
//     allowed_origins, which it reads; an ignored cors field can only
//     withhold access, never add it;
//   - a top-level field whose closest known field is cors or
//     cors.allowed_origins (misplaced origins), for the same reason;
//   - a field whose closest known name is an extension (x-note for
//     x_note): an extension is never enforced anyway;
//   - client_ip_header (an unreadable value, or a field closest to it)
//     while trusted_proxy_ips is empty: no header is believed from anyone,
//     so which header was meant cannot matter.
//
// Every other ignored field fails closed: one closest to ip_whitelist,
// rate_limit or ip_rate_limit or to their rpm and burst (ignoring it drops
// a restriction), to trusted_proxy_ips (the reverse proxy's own address,
// often loopback, would become every forwarded client's: an allowlist that
// names it, or loopback's keyless /metrics, would let them all in), to
// client_ip_header while proxies are trusted (X-Forwarded-For would be
// read instead, which a proxy that sets another header may pass through
// from the client), and a field with no close known one at all: its intent
// is unknown, and it may have been meant to restrict. The error names each
// such field and the fix.
func (p Policy) failClosed() error {
	var bad []string
	for _, f := range p.extra {
		if !strings.HasPrefix(f.name, ExtensionPrefix) && !p.tolerated(f) {
			desc := describeIgnored(f)
			if f.in != "" || f.name != fieldClientIPHeader { // that one already shows its value
				desc += " (value " + cut(string(f.raw)) + ")"
			}
			bad = append(bad, desc+"; "+hintIgnored(f))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	more := ""
	if len(bad) > maxNamed {
		more = fmt.Sprintf("; and %d more", len(bad)-maxNamed)
		bad = bad[:maxNamed]
	}
	return invalid("it holds fields an earlier FLM stored and never enforced; ignoring them could let in what they were "+
		"meant to keep out, so it is not loaded (a proxy refuses to start, a running one keeps its last good policy) "+
		"until you fix it with `flm security policy set`: %s%s", strings.Join(bad, "; "), more)
}

// tolerated reports whether the ignored field f may stay unenforced (see
// failClosed).
func (p Policy) tolerated(f field) bool {
	if f.in == fieldCORS {
		return true
	}
	meant := f.name
	if f.in != "" || f.name != fieldClientIPHeader {
		meant = objects[f.in].suggest(f.name)
	}
	switch {
	case meant == "":
		return false
	case strings.HasPrefix(meant, ExtensionPrefix):
		return true
	case f.in == "" && (meant == fieldCORS || strings.HasPrefix(meant, fieldCORS+".")):
		return true
	case f.in == "" && meant == fieldClientIPHeader:
		return len(p.TrustedProxyIPs) == 0
	}
	return false
}
