package legacy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"
	sqlitedriver "github.com/ncruces/go-sqlite3/driver"

	"github.com/unjuno/flm/core/flmerr"
)

// FileName is the prototype's database file.
const FileName = "flm.db"

// MaxKnownMigration is the highest version in the prototype's migrations
// table that this reader knows the schema of. A file with a higher version
// was written by a newer prototype and is refused rather than guessed at.
const MaxKnownMigration = 1

// busyWait bounds the wait for a file another process holds locked.
const busyWait = 2 * time.Second

// required are the tables and columns the mapping reads.
var required = map[string][]string{
	"apis":                  {"id", "name", "model", "port", "enable_auth", "status", "engine_type", "created_at"},
	"api_keys":              {"id", "api_id", "key_hash", "encrypted_key", "created_at"},
	"api_security_settings": {"api_id", "ip_whitelist", "rate_limit_enabled", "rate_limit_requests", "rate_limit_window_seconds"},
	"user_settings":         {"key", "value"},
	"engine_configs":        {"id", "engine_type", "name", "base_url"},
}

// API is a row of apis: one listener serving one model.
type API struct {
	ID, Name, Model, Status, EngineType string
	Port                                int
	EnableAuth                          bool
	CreatedAt                           time.Time
}

// Key is a row of api_keys, without the encrypted key.
type Key struct {
	ID, APIID, Hash string
	CreatedAt       time.Time
	// RevokedAt is set when the row says the key is revoked (an optional
	// revoked_at or is_active column some prototype builds had).
	RevokedAt *time.Time
	// Check is what decrypting the key said: see Verified, Mismatch,
	// Unverified, Undecryptable.
	Check string
	// EncryptedSize is the size of encrypted_key in bytes. Above
	// MaxEncryptedKey the blob is not read at all (the key stays
	// Unverified).
	EncryptedSize int64
}

// MaxEncryptedKey caps the encrypted_key read per row: a prototype key is
// 32 characters, so its sealed form is 60 bytes (80 as base64 text). A
// larger blob (a crafted file) is not loaded or decrypted: that key is
// imported by key_hash, unverified, with a warning.
const MaxEncryptedKey = 4096

// Key check outcomes.
const (
	Verified      = "verified"      // decrypted, SHA-256 equals key_hash
	Mismatch      = "mismatch"      // decrypted, SHA-256 differs from key_hash
	Unverified    = "unverified"    // no AES key available
	Undecryptable = "undecryptable" // the AES key does not open it
)

// Security is a row of api_security_settings.
type Security struct {
	APIID              string
	IPWhitelist        string
	RateLimitEnabled   bool
	Requests, Window   int
	KeyRotation        bool
	KeyRotationDays    int
	HasRotationColumns bool
}

// Setting is a row of user_settings.
type Setting struct{ Key, Value string }

// Engine is a row of engine_configs.
type Engine struct {
	ID, EngineType, Name, BaseURL string
	IsDefault                     bool
}

// Snapshot is everything read from one legacy file.
type Snapshot struct {
	Path string `json:"path"`
	// SHA256 is the SHA-256 of flm.db, followed, when flm.db-wal is
	// present and not empty, by the bytes of the WAL (whose frames are
	// part of the database's content); WAL tells which.
	SHA256 string `json:"sha256"`
	WAL    bool   `json:"wal,omitempty"`
	// Migration is the highest version in its migrations table (0: none).
	Migration int `json:"migration_version"`
	// AESKeySource: "keychain", "file" (encryption_key.bin) or "none".
	AESKeySource string `json:"aes_key_source"`
	// OtherTables are tables the mapping does not read (logs, metrics,
	// oauth_tokens …): listed in the plan as dropped.
	OtherTables []string `json:"other_tables"`
	// ExtraColumns are columns of mapped tables the mapping does not read.
	ExtraColumns []string `json:"extra_columns"`

	APIs     []API      `json:"-"`
	Keys     []Key      `json:"-"`
	Security []Security `json:"-"`
	Settings []Setting  `json:"-"`
	Engines  []Engine   `json:"-"`
}

// KeyLookup reads the prototype's AES key from the OS keychain: service
// "FLM", account "encryption_key". nil = no keychain.
type KeyLookup func(ctx context.Context, service, account string) ([]byte, error)

// Options adjust Read.
type Options struct {
	Keychain KeyLookup
}

func badInput(format string, args ...any) error {
	return flmerr.New(flmerr.InvalidArgument, format, args...)
}

// Locate resolves --from: the flm.db file itself, or the folder holding it.
func Locate(from string) (string, error) {
	if from == "" {
		return "", badInput("--from is required: the prototype's flm.db, or the folder holding it")
	}
	p, err := filepath.Abs(from)
	if err != nil {
		return "", badInput("--from %q: %v", from, err)
	}
	st, err := os.Stat(p)
	if err != nil {
		return "", badInput("--from %s: no such file or folder", p)
	}
	if st.IsDir() {
		p = filepath.Join(p, FileName)
		if st, err = os.Stat(p); err != nil {
			return "", badInput("--from: the folder holds no %s", FileName)
		}
	}
	if !st.Mode().IsRegular() {
		return "", badInput("--from %s is not a regular file", p)
	}
	return p, nil
}

// Read reads the legacy file at path (see Locate) and checks its keys.
func Read(ctx context.Context, path string, o Options) (*Snapshot, error) {
	sum, wal, err := checkHeader(path)
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{Path: path, SHA256: sum, WAL: wal}
	q := url.Values{"mode": {"ro"}, "_pragma": {fmt.Sprintf("busy_timeout(%d)", busyWait.Milliseconds()), "query_only(1)"}}
	u := url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	db, err := sqlitedriver.Open(u.String())
	if err != nil {
		return nil, classify(path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, classify(path, err)
	}
	defer func() { _ = tx.Rollback() }()
	var enc [][]byte
	if err := snap.readAll(ctx, tx, &enc); err != nil {
		return nil, classify(path, err)
	}
	_ = tx.Rollback()
	if err := snap.checkKeys(ctx, enc, o); err != nil {
		return nil, err
	}
	return snap, nil
}

var sqliteMagic = []byte("SQLite format 3\x00")

// checkHeader refuses what is not a whole SQLite file before SQLite sees
// it, and returns the file's SHA-256 (recorded by apply: the same file is
// not applied twice) and whether a -wal file was hashed with it.
func checkHeader(path string) (string, bool, error) {
	sum, err := headerSum(path)
	if err != nil {
		return "", false, err
	}
	// The prototype (sqlx) keeps flm.db in WAL mode: rows still in
	// flm.db-wal are part of the database, so the same flm.db with another
	// WAL is another state. The hash covers both; without a WAL it is the
	// plain SHA-256 of flm.db (what sha256sum prints).
	w, err := os.Open(path + "-wal")
	if err != nil {
		return sum, false, nil
	}
	defer w.Close()
	if st, err := w.Stat(); err != nil || st.Size() == 0 {
		return sum, false, nil
	}
	h := sha256.New()
	h.Write([]byte("flm.db sha256 " + sum + "\n"))
	if _, err := io.Copy(h, w); err != nil {
		return "", false, badInput("cannot read %s-wal: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), true, nil
}

func headerSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", badInput("cannot open %s: %v", path, err)
	}
	defer f.Close()
	head := make([]byte, 100)
	n, _ := io.ReadFull(f, head)
	if n < 100 || !bytes.Equal(head[:16], sqliteMagic) {
		return "", badInput("%s is not a SQLite database (not the prototype's flm.db)", path)
	}
	st, err := f.Stat()
	if err != nil {
		return "", badInput("cannot read %s: %v", path, err)
	}
	pageSize := int64(head[16])<<8 | int64(head[17])
	if pageSize == 1 {
		pageSize = 65536
	}
	pages := int64(head[28])<<24 | int64(head[29])<<16 | int64(head[30])<<8 | int64(head[31])
	if pageSize < 512 || st.Size()%pageSize != 0 || pages > 0 && st.Size() < pages*pageSize {
		return "", badInput("%s is truncated or damaged (%d bytes; its header says %d pages of %d bytes); use an intact copy", path, st.Size(), pages, pageSize)
	}
	h := sha256.New()
	if _, err := f.Seek(0, io.SeekStart); err == nil {
		_, _ = io.Copy(h, f)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// classify turns a driver error into the error users see.
func classify(path string, err error) error {
	var fe *flmerr.Error
	switch {
	case errors.As(err, &fe):
		return err
	case errors.Is(err, sqlite3.BUSY), errors.Is(err, sqlite3.LOCKED):
		return badInput("%s is locked by another process: quit the prototype app (or whatever holds the file) and retry", path)
	case errors.Is(err, sqlite3.NOTADB):
		return badInput("%s is not a SQLite database (not the prototype's flm.db)", path)
	case errors.Is(err, sqlite3.CORRUPT):
		return badInput("%s is damaged (truncated or corrupt); use an intact copy", path)
	case errors.Is(err, sqlite3.CANTOPEN), errors.Is(err, sqlite3.PERM), errors.Is(err, sqlite3.IOERR):
		return badInput("cannot read %s: %v", path, err)
	}
	return flmerr.Wrap(err, flmerr.InvalidArgument, "read %s", path)
}

func (s *Snapshot) readAll(ctx context.Context, tx *sql.Tx, enc *[][]byte) error {
	if err := s.detect(ctx, tx); err != nil {
		return err
	}
	cols := func(t string) map[string]bool { return s.columns(ctx, tx, t) }
	rows, err := tx.QueryContext(ctx, `SELECT id, name, model, port, enable_auth, status, engine_type, created_at FROM apis ORDER BY created_at, id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var a API
		var created any
		if err := rows.Scan(&a.ID, &a.Name, &a.Model, &a.Port, &a.EnableAuth, &a.Status, &a.EngineType, &created); err != nil {
			rows.Close()
			return fmt.Errorf("apis: %w", err)
		}
		a.CreatedAt = parseTime(created)
		s.APIs = append(s.APIs, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	kc := cols("api_keys")
	// A blob above MaxEncryptedKey is not even loaded (octet_length reads
	// the record header only).
	sel := `SELECT id, api_id, key_hash, CASE WHEN octet_length(encrypted_key) > ` + strconv.Itoa(MaxEncryptedKey) + ` THEN NULL ELSE encrypted_key END, COALESCE(octet_length(encrypted_key), 0), created_at, ` + orNull(kc, "updated_at") + `, ` + orNull(kc, "revoked_at") + `, ` + orNull(kc, "is_active") + ` FROM api_keys ORDER BY created_at, id`
	rows, err = tx.QueryContext(ctx, sel)
	if err != nil {
		return err
	}
	for rows.Next() {
		var k Key
		var blob []byte
		var created, updated, revoked, active any
		if err := rows.Scan(&k.ID, &k.APIID, &k.Hash, &blob, &k.EncryptedSize, &created, &updated, &revoked, &active); err != nil {
			rows.Close()
			return fmt.Errorf("api_keys: %w", err)
		}
		k.CreatedAt = parseTime(created)
		if t := parseTime(revoked); !t.IsZero() {
			k.RevokedAt = &t
		} else if active != nil && fmt.Sprint(active) == "0" {
			t := parseTime(updated)
			if t.IsZero() {
				t = k.CreatedAt
			}
			k.RevokedAt = &t
		}
		s.Keys = append(s.Keys, k)
		*enc = append(*enc, slices.Clone(blob))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	sc := cols("api_security_settings")
	rot := sc["key_rotation_enabled"] && sc["key_rotation_interval_days"]
	sel = `SELECT api_id, COALESCE(ip_whitelist, ''), rate_limit_enabled, COALESCE(rate_limit_requests, 0), COALESCE(rate_limit_window_seconds, 0)`
	if rot {
		sel += `, COALESCE(key_rotation_enabled, 0), COALESCE(key_rotation_interval_days, 0)`
	}
	rows, err = tx.QueryContext(ctx, sel+` FROM api_security_settings ORDER BY api_id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var r Security
		dst := []any{&r.APIID, &r.IPWhitelist, &r.RateLimitEnabled, &r.Requests, &r.Window}
		if rot {
			dst = append(dst, &r.KeyRotation, &r.KeyRotationDays)
		}
		if err := rows.Scan(dst...); err != nil {
			rows.Close()
			return fmt.Errorf("api_security_settings: %w", err)
		}
		r.HasRotationColumns = rot
		s.Security = append(s.Security, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	rows, err = tx.QueryContext(ctx, `SELECT key, COALESCE(value, '') FROM user_settings ORDER BY key`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var st Setting
		if err := rows.Scan(&st.Key, &st.Value); err != nil {
			rows.Close()
			return fmt.Errorf("user_settings: %w", err)
		}
		s.Settings = append(s.Settings, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	ec := cols("engine_configs")
	rows, err = tx.QueryContext(ctx, `SELECT id, engine_type, COALESCE(name, ''), COALESCE(base_url, ''), `+orNull(ec, "is_default")+` FROM engine_configs ORDER BY id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var e Engine
		var def any
		if err := rows.Scan(&e.ID, &e.EngineType, &e.Name, &e.BaseURL, &def); err != nil {
			rows.Close()
			return fmt.Errorf("engine_configs: %w", err)
		}
		e.IsDefault = def != nil && fmt.Sprint(def) == "1"
		s.Engines = append(s.Engines, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// A quick integrity check catches a damaged file the header did not.
	var res string
	if err := tx.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&res); err != nil {
		return err
	}
	if res != "ok" {
		return badInput("%s is damaged (integrity check: %s); use an intact copy", s.Path, clip(res))
	}
	return nil
}

func orNull(cols map[string]bool, c string) string {
	if cols[c] {
		return c
	}
	return "NULL"
}

func (s *Snapshot) columns(ctx context.Context, tx *sql.Tx, table string) map[string]bool {
	out := map[string]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if rows.Scan(&n) == nil {
			out[n] = true
		}
	}
	return out
}

// known optional columns the reader uses or knowingly ignores.
var optional = map[string][]string{
	"apis":                  {"engine_config", "timeout_secs", "updated_at", "last_used_at"},
	"api_keys":              {"updated_at", "revoked_at", "is_active"},
	"api_security_settings": {"key_rotation_enabled", "key_rotation_interval_days", "created_at", "updated_at"},
	"user_settings":         {"updated_at"},
	"engine_configs":        {"auto_detect", "executable_path", "is_default", "created_at", "updated_at"},
}

// detect checks the schema: every mapped table and column present, and no
// migration newer than this reader knows.
func (s *Snapshot) detect(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return err
	}
	tables := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		tables[n] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var missing []string
	for _, t := range slices.Sorted(mapKeys(required)) {
		if !tables[t] {
			missing = append(missing, "table "+t)
			continue
		}
		cols := s.columns(ctx, tx, t)
		for _, c := range required[t] {
			if !cols[c] {
				missing = append(missing, t+"."+c)
			}
		}
		for _, c := range slices.Sorted(mapKeys(cols)) {
			if !slices.Contains(required[t], c) && !slices.Contains(optional[t], c) {
				s.ExtraColumns = append(s.ExtraColumns, t+"."+c)
			}
		}
	}
	if len(missing) > 0 {
		return badInput("%s does not have the prototype's schema (missing %s): not a prototype flm.db, or from an unknown version", s.Path, strings.Join(missing, ", "))
	}
	for _, t := range slices.Sorted(mapKeys(tables)) {
		if _, ok := required[t]; !ok && t != "migrations" {
			s.OtherTables = append(s.OtherTables, t)
		}
	}
	if tables["migrations"] {
		var v sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(CAST(version AS INTEGER)) FROM migrations`).Scan(&v); err != nil {
			return err
		}
		s.Migration = int(v.Int64)
		if s.Migration > MaxKnownMigration {
			return badInput("%s has schema version %d, newer than this flm knows (%d): it was written by a newer prototype; nothing was read", s.Path, s.Migration, MaxKnownMigration)
		}
	}
	return nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// parseTime reads the prototype's timestamps: RFC 3339 text (chrono),
// SQLite's "YYYY-MM-DD HH:MM:SS", or Unix seconds. Unreadable = zero.
func parseTime(v any) time.Time {
	switch x := v.(type) {
	case time.Time:
		return x.UTC()
	case int64:
		return time.Unix(x, 0).UTC()
	case float64:
		return time.Unix(int64(x), 0).UTC()
	case []byte:
		return parseTime(string(x))
	case string:
		x = strings.TrimSpace(x)
		for _, l := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"} {
			if t, err := time.Parse(l, x); err == nil {
				return t.UTC()
			}
		}
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	return time.Time{}
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
