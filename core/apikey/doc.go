// Package apikey issues and stores FLM's API keys and says what each key
// may do; the proxy verifies a presented key with gateway.KeyRing.Check,
// against a snapshot of the records this package stores.
//
// A key is "flm_" followed by 43 base64url characters (256 random bits). Only
// its SHA-256 hash is ever stored: a slow password hash buys nothing for a
// 256-bit random secret and would cost a KDF run per request. Lookup is O(1)
// by hash, and the stored hash is compared in constant time before a key is
// accepted.
//
// Keys imported from the prototype (flm migrate legacy, Record.Legacy) keep
// the prototype's shape: 32 characters of standard base64 without prefix
// (LegacyWellFormed), still stored as the hex SHA-256 of the plaintext. A
// presented string is checked only against records of its own shape: a
// legacy-shaped string never matches a native record and vice versa, so
// the wider legacy alphabet cannot be used to reach a native key.
//
// A key may be scoped (Record.Models, see AllowsModel), have its own rate
// limit (Record.RPM) and expire (Record.ExpiresAt). Scopes are always
// engine-qualified flm:// ids or globs; a key without scopes may use every
// model. Matching fails closed: an id that matches no scope is refused.
//
// Security: the plaintext exists only in the Issued values that Create,
// CreateWith, Rotate and RotateExpiring return. Nothing in this package logs
// it, puts it in an error, or passes it to a Store.
package apikey
