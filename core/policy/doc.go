// Package policy is FLM's security policy: the one JSON document stored
// under id "default" (PRODUCT.md §6), its complete validation, and Compiled,
// the precomputed form the proxy consults on every request.
//
// The document is an object with these fields; everything else is kept:
//
//	ip_whitelist       IPs and CIDRs, v4 and v6; empty or absent allows every client
//	trusted_proxy_ips  peers whose X-Forwarded-For / X-Real-IP are believed; absent = none
//	cors               {"allowed_origins": ["https://app.example", ...]} or ["*"]; empty = no cross-origin access
//	rate_limit         {"rpm": N, "burst": M} per API key; rpm 0 or absent = off
//	ip_rate_limit      {"rpm": N, "burst": M} per client IP
//
// # Security notes
//
// The package fails closed. Parse accepts a document only when every rule
// holds: no duplicate keys at any depth (different JSON parsers disagree on
// which duplicate wins, so a reviewer and the proxy could read different
// policies), no key that differs from a known one only in case (encoding/json
// matches field names case-insensitively, and a silently ignored
// "IP_Whitelist" would leave the proxy open), no null where a list or object
// is expected, valid UTF-8, one JSON value and nothing after it, bounded size,
// depth and array length. A stored document that no longer parses is reported
// as POLICY_INVALID by Service.Show instead of falling back to a permissive
// default; the proxy must refuse to serve rather than run without its policy.
//
// Fields the package does not know are kept verbatim (compacted) and written
// back by Document, so a newer FLM's settings survive a round trip through an
// older one. They are never interpreted.
//
// Client addresses are unmapped (::ffff:10.1.2.3 is 10.1.2.3) and stripped of
// their zone before matching, so an IPv4 entry covers clients that reach a
// dual-stack listener. Origins are compared in their serialized form (lower
// case, default port dropped), which is what browsers send.
package policy
