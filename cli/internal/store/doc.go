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
// Security: no plaintext API key ever reaches this package; api_keys holds
// SHA-256 hashes only.
package store
