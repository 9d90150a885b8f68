// Package gateway holds the proxy's use cases, free of HTTP: verifying API
// keys against an in-memory key ring, rate limiting (token buckets),
// resolving a requested model to an engine, and validating and rewriting
// OpenAI requests for the engine that will serve them.
//
// Everything here is on the proxy's hot path: no I/O, no per-request
// database reads. Snapshots (KeyRing, Catalog) are immutable and swapped
// whole when the proxy refreshes them.
//
// Security: a KeyRing holds hashes only. Errors never echo a key,
// Authorization header or prompt text, and name engines by id and kind,
// never by URL (key holders may be remote devices). A request whose keys
// an engine could read differently from FLM (a case variant of a field
// FLM routes on, as Go's encoding/json matches keys case-insensitively)
// is refused. Engine differences come from engine.Habits, declared by
// the drivers: nothing here switches on an engine's kind.
package gateway
