// Package store keeps FLM's state in two SQLite files through GORM on the
// pure-Go driver github.com/ncruces/go-sqlite3 (no cgo):
//
//   - config.db: settings, user-added engine endpoints, the engine cache,
//     proxy profiles and handles, engine health logs;
//   - security.db: API-key hashes, the security policy, audit logs,
//     certificates, the IP blocklist.
//
// Each file has its own versioned migrations, each applied in one
// transaction at every open. A file whose migrations fail (or whose schema
// is newer than this binary) is opened read-only: reads work, every write is
// refused with DB_READ_ONLY and a message that says how to recover.
//
// Files are created 0600 inside 0700 directories. Write transactions begin
// IMMEDIATE and every connection waits up to BusyTimeout for a lock, so two
// flm processes writing at once both succeed instead of failing with
// "database is locked".
//
// security.db is encrypted at rest (crypt.go): opened through the adiantum
// VFS with a random 256-bit key kept in the OS keychain (or, explicitly and
// with a warning, in a 0600 key file, or FLM_DB_KEY), its snapshots
// encrypted with the same key. Replacing the file (first-time encryption of
// an older plaintext file, key rotation, key import) is crash-safe: a new
// file is written and verified, swapped in by one rename, and the old one
// overwritten; the next open finishes or undoes an interrupted operation.
//
// Security: no plaintext API key ever reaches this package; api_keys holds
// SHA-256 hashes only. security.db's key never appears in a connection
// string, an error message or a log line.
package store
