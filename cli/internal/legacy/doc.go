// Package legacy reads the prototype's flm.db (PREDECESSOR.md §8) and maps
// it to a Plan: what becomes FLM's API keys, policy, proxy profiles,
// engine endpoints and settings, and what is dropped and why.
//
// The legacy file is never modified: it is opened with mode=ro (never
// immutable=1, since the prototype may still have it open and write it;
// immutable would let SQLite read a torn state) and read inside ONE read
// transaction, so the snapshot is consistent. A file another process
// holds locked is refused after a short wait.
//
// Security: the prototype kept each key's plaintext AES-256-GCM encrypted.
// When its AES key is available (the OS keychain, service "FLM", account
// "encryption_key", or <legacy dir>/encryption_key.bin), each key is
// decrypted only to check SHA-256(plaintext) == key_hash; the plaintext
// lives in a local variable, is never returned, logged or written, and
// the AES key never leaves Read.
package legacy
