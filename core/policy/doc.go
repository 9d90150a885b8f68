// Package policy is FLM's security policy: the one JSON document stored
// under id "default" (PRODUCT.md §6), its complete validation, and Compiled,
// the precomputed form the proxy consults on every request.
//
// The document is an object with these fields:
//
//	ip_whitelist       IPs and CIDRs, v4 and v6; empty or absent allows every client
//	trusted_proxy_ips  peers whose client-IP header is believed; absent = none
//	client_ip_header   "X-Forwarded-For" (the default) or "X-Real-IP": the header those
//	                   proxies set; any case, stored canonical; "X-Real-IP" needs
//	                   trusted_proxy_ips, since it is read only from a peer listed there
//	cors               {"allowed_origins": ["https://app.example", ...]} or ["*"]; empty = no cross-origin access
//	rate_limit         {"rpm": N, "burst": M} per API key; rpm 0 or absent = off
//	ip_rate_limit      {"rpm": N, "burst": M} per client IP
//
// # Security notes
//
// The package fails closed. Parse accepts a document only when every rule
// holds: no unknown field at any level (a misspelled "ip_whitelst" would
// otherwise leave the proxy open; the message names the field meant), no
// duplicate keys at any depth (different JSON parsers disagree on which
// duplicate wins, so a reviewer and the proxy could read different
// policies), no key that differs from a known one only in case (encoding/json
// matches field names case-insensitively), no null where a list or object
// is expected, valid UTF-8 without lone UTF-16 surrogates, no byte-order
// mark, one JSON value and nothing after it, bounded size, depth and array
// length. A stored document that no longer parses is reported as
// POLICY_INVALID by Service.Show instead of falling back to a permissive
// default; the proxy must refuse to serve rather than run without its policy.
//
// Fields whose name starts with "x_" are extensions, allowed in every
// object: kept verbatim (compacted) and written back by Document, never
// interpreted. Earlier versions kept every unknown field. Service.Show
// refuses such a stored document (POLICY_INVALID, naming each field and
// the fix) unless ignoring every such field can only leave the gateway as
// strict as meant or stricter — a stray cors field, say; see
// Policy.failClosed for the rule. A misspelled "ip_whitelst", a rate limit
// field, trusted_proxy_ips, or a field with no close known one (its intent
// is unknown) fails closed. A tolerated field is enforced as nothing (as
// those versions did) and reported in Stored.Warnings; Validate and Set
// refuse it until it is fixed.
//
// Client addresses are unmapped (::ffff:10.1.2.3 is 10.1.2.3) and stripped of
// their zone before matching, so an IPv4 entry covers clients that reach a
// dual-stack listener. Origins are compared in their serialized form (lower
// case, default port dropped), which is what browsers send.
package policy
