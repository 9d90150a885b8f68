// Package apikey issues, stores and verifies FLM's API keys.
//
// A key is "flm_" followed by 43 base64url characters (256 random bits). Only
// its SHA-256 hash is ever stored: a slow password hash buys nothing for a
// 256-bit random secret and would cost a KDF run per request. Lookup is O(1)
// by hash, and the stored hash is compared in constant time before a key is
// accepted.
//
// Security: the plaintext exists only in the value Create/Rotate return.
// Nothing in this package logs it, puts it in an error, or passes it to a
// Store.
package apikey
