package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// migration is one schema step. Steps are append-only: a released step is
// never edited, a change is a new step.
type migration struct {
	version int
	name    string
	stmts   []string
}

// Timestamps are INTEGER Unix milliseconds (UTC).
var migrations = map[Kind][]migration{
	Config: {{1, "initial", []string{
		`CREATE TABLE settings (
			key        TEXT PRIMARY KEY,
			value      TEXT NOT NULL,
			updated_at INTEGER NOT NULL,
			notes      TEXT
		)`,
		`CREATE TABLE engine_endpoints (
			id          TEXT PRIMARY KEY,
			kind        TEXT NOT NULL,
			base_url    TEXT NOT NULL,
			api_key_env TEXT NOT NULL DEFAULT '',
			created_at  INTEGER NOT NULL
		)`,
		`CREATE TABLE engines_cache (
			engine_id  TEXT PRIMARY KEY,
			state_json TEXT NOT NULL,
			cached_at  INTEGER NOT NULL
		)`,
		`CREATE TABLE proxy_profiles (
			id          TEXT PRIMARY KEY,
			config_json TEXT NOT NULL,
			created_at  INTEGER NOT NULL
		)`,
		`CREATE TABLE active_proxy_handles (
			id          TEXT PRIMARY KEY,
			handle_json TEXT NOT NULL,
			created_at  INTEGER NOT NULL
		)`,
		`CREATE TABLE engine_health_logs (
			id         INTEGER PRIMARY KEY AUTOINCREMENT,
			engine_id  TEXT NOT NULL,
			model_id   TEXT,
			state      TEXT NOT NULL,
			latency_ms INTEGER,
			error_rate REAL,
			created_at INTEGER NOT NULL
		)`,
		`CREATE INDEX engine_health_logs_engine_time ON engine_health_logs (engine_id, created_at)`,
	}}},
	Security: {{1, "initial", []string{
		`CREATE TABLE api_keys (
			id         TEXT PRIMARY KEY,
			label      TEXT NOT NULL,
			hash       TEXT NOT NULL UNIQUE CHECK (length(hash) = 64),
			created_at INTEGER NOT NULL,
			revoked_at INTEGER
		)`,
		`CREATE TABLE security_policies (
			id          TEXT PRIMARY KEY CHECK (id = 'default'),
			policy_json TEXT NOT NULL,
			updated_at  INTEGER NOT NULL
		)`,
		`INSERT INTO security_policies (id, policy_json, updated_at)
			VALUES ('default', '{"ip_whitelist":[],"cors":{"allowed_origins":[]}}', CAST(unixepoch('subsec') * 1000 AS INTEGER))`,
		`CREATE TABLE audit_logs (
			id         INTEGER PRIMARY KEY AUTOINCREMENT,
			request_id TEXT,
			api_key_id TEXT,
			event_type TEXT NOT NULL,
			severity   TEXT NOT NULL DEFAULT 'low',
			ip         TEXT,
			endpoint   TEXT,
			status     INTEGER,
			details    TEXT,
			created_at INTEGER NOT NULL
		)`,
		`CREATE INDEX audit_logs_time ON audit_logs (created_at)`,
		`CREATE TABLE certificates (
			id         TEXT PRIMARY KEY,
			mode       TEXT NOT NULL,
			domain     TEXT,
			cert_path  TEXT NOT NULL,
			key_path   TEXT NOT NULL,
			expires_at INTEGER,
			updated_at INTEGER NOT NULL
		)`,
		`CREATE TABLE ip_blocklist (
			ip               TEXT PRIMARY KEY,
			failure_count    INTEGER NOT NULL DEFAULT 0,
			first_failure_at INTEGER,
			blocked_until    INTEGER,
			permanent_block  INTEGER NOT NULL DEFAULT 0,
			last_attempt     INTEGER
		)`,
	}}, {2, "api key scopes", []string{
		// models: JSON array of flm:// ids and globs, NULL = every model;
		// never an empty array, which a reader could take for either.
		`ALTER TABLE api_keys ADD COLUMN models TEXT
			CHECK (models IS NULL OR (json_valid(models) AND json_type(models) = 'array' AND json_array_length(models) > 0))`,
		`ALTER TABLE api_keys ADD COLUMN rpm INTEGER NOT NULL DEFAULT 0 CHECK (rpm >= 0)`,
		`ALTER TABLE api_keys ADD COLUMN expires_at INTEGER`,
	}}, {3, "certificates, acme accounts, legacy keys", []string{
		// The v1 certificates table was created empty and never written:
		// it becomes a store of PEMs (security.db is encrypted at rest).
		`DROP TABLE certificates`,
		`CREATE TABLE certificates (
			id         TEXT PRIMARY KEY,
			source     TEXT NOT NULL CHECK (source IN ('acme', 'local-ca', 'dev')),
			subject    TEXT NOT NULL,
			sans       TEXT NOT NULL CHECK (json_valid(sans) AND json_type(sans) = 'array'),
			issuer     TEXT NOT NULL,
			cert_pem   TEXT NOT NULL,
			key_pem    TEXT NOT NULL,
			not_before INTEGER NOT NULL,
			not_after  INTEGER NOT NULL,
			meta       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(meta) AND json_type(meta) = 'object'),
			updated_at INTEGER NOT NULL
		)`,
		`CREATE TABLE acme_accounts (
			directory    TEXT NOT NULL,
			email        TEXT NOT NULL,
			key_pem      TEXT NOT NULL,
			registration TEXT NOT NULL DEFAULT '',
			created_at   INTEGER NOT NULL,
			PRIMARY KEY (directory, email)
		)`,
		// legacy = 1: imported from the prototype (flm migrate legacy);
		// its plaintext is 32 base64 characters, not flm_….
		`ALTER TABLE api_keys ADD COLUMN legacy INTEGER NOT NULL DEFAULT 0 CHECK (legacy IN (0, 1))`,
	}}},
}

// SchemaVersion is the newest schema version this binary knows for kind.
func SchemaVersion(kind Kind) int {
	m := migrations[kind]
	return m[len(m)-1].version
}

// migrate applies pending steps, each in one IMMEDIATE transaction that
// re-reads the version first, so concurrent flm processes apply each step
// exactly once. Before changing a file that already has a schema, it
// snapshots it into backupDir (when not empty): a migration that goes
// wrong can be undone with `flm security backup restore`.
func (d *DB) migrate(ctx context.Context, backupDir string) error {
	if err := d.gdb.WithContext(ctx).Raw("PRAGMA user_version").Scan(&d.version).Error; err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	latest := SchemaVersion(d.Kind)
	if d.version > latest {
		return fmt.Errorf("its schema version %d is newer than this flm supports (%d)", d.version, latest)
	}
	if backupDir != "" && d.version >= 1 && d.version < latest {
		if _, err := d.autoSnapshot(ctx, backupDir, time.Now()); err != nil {
			return fmt.Errorf("snapshot before migrating from version %d: %w", d.version, err)
		}
	}
	if err := d.gdb.WithContext(ctx).Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	)`).Error; err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, m := range migrations[d.Kind] {
		err := d.gdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var v int
			if err := tx.Raw("PRAGMA user_version").Scan(&v).Error; err != nil {
				return err
			}
			if v >= m.version {
				d.version = v
				return nil
			}
			for _, s := range m.stmts {
				if err := tx.Exec(s).Error; err != nil {
					return err
				}
			}
			if err := tx.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", m.version, m.name, time.Now().UnixMilli()).Error; err != nil {
				return err
			}
			// PRAGMAs take no bound parameters; both values are ours.
			if err := tx.Exec(fmt.Sprintf("PRAGMA application_id = %d", d.Kind.appID())).Error; err != nil {
				return err
			}
			if err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", m.version)).Error; err != nil {
				return err
			}
			d.version = m.version
			return nil
		})
		if err != nil {
			return fmt.Errorf("migration %d (%s) failed: %w", m.version, m.name, err)
		}
	}
	return nil
}
