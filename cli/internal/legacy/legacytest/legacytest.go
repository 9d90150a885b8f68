// Package legacytest builds prototype flm.db fixtures from the schema
// documented in PREDECESSOR.md §8, for the tests of `flm migrate legacy`.
// It writes keys the way the prototype did: plaintext = the first 32
// characters of base64(32 random bytes), key_hash = hex SHA-256 of it,
// encrypted_key = AES-256-GCM nonce(12)‖ciphertext+tag, raw or base64 text.
package legacytest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"path/filepath"

	_ "github.com/ncruces/go-sqlite3/driver" // "sqlite3" database/sql driver
)

// Schema is the prototype's schema (PREDECESSOR.md §8), plus the
// migrations table and two of the tables the migration drops.
const Schema = `
CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
CREATE TABLE apis (id TEXT PRIMARY KEY, name TEXT NOT NULL, model TEXT NOT NULL, port INTEGER NOT NULL UNIQUE,
  enable_auth INTEGER NOT NULL DEFAULT 1, status TEXT NOT NULL DEFAULT 'stopped', engine_type TEXT NOT NULL DEFAULT 'ollama',
  engine_config TEXT, timeout_secs INTEGER NOT NULL DEFAULT 30, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, last_used_at TEXT);
CREATE TABLE api_keys (id TEXT PRIMARY KEY, api_id TEXT NOT NULL REFERENCES apis(id) ON DELETE CASCADE, key_hash TEXT NOT NULL,
  encrypted_key BLOB NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE api_security_settings (api_id TEXT PRIMARY KEY REFERENCES apis(id) ON DELETE CASCADE, ip_whitelist TEXT,
  rate_limit_enabled INTEGER NOT NULL DEFAULT 0, rate_limit_requests INTEGER NOT NULL DEFAULT 100,
  rate_limit_window_seconds INTEGER NOT NULL DEFAULT 60, key_rotation_enabled INTEGER NOT NULL DEFAULT 0,
  key_rotation_interval_days INTEGER NOT NULL DEFAULT 30, created_at TEXT, updated_at TEXT);
CREATE TABLE user_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE engine_configs (id TEXT PRIMARY KEY, engine_type TEXT NOT NULL, name TEXT NOT NULL, base_url TEXT,
  auto_detect INTEGER NOT NULL DEFAULT 1, executable_path TEXT, is_default INTEGER NOT NULL DEFAULT 0);
CREATE TABLE request_logs (id TEXT PRIMARY KEY, api_id TEXT, path TEXT, created_at TEXT);
CREATE TABLE oauth_tokens (id TEXT PRIMARY KEY, encrypted_token BLOB);
`

// API is one prototype API with its keys.
type API struct {
	ID, Name, Model string
	Port            int
	Whitelist       string // JSON list, "" = NULL
	RateLimit       bool
	Requests        int
	Window          int
	Keys            int // how many keys to create
}

// Options describe a fixture.
type Options struct {
	APIs []API
	// AESKey encrypts the keys (32 bytes); nil = random.
	AESKey []byte
	// Base64Blobs stores every other encrypted_key as base64 text (the
	// prototype's second code path).
	Base64Blobs bool
	// OrphanKeys adds keys whose API was deleted.
	OrphanKeys int
	// MismatchKeys adds keys whose encrypted plaintext does not hash to
	// key_hash.
	MismatchKeys int
	// DuplicateHash gives the last key the hash of the first.
	DuplicateHash bool
	// Settings are user_settings rows.
	Settings map[string]string
	// Engines are engine_configs rows: type → base_url.
	Engines [][2]string
	// Migration is the migrations table's version (0 = 1).
	Migration int
}

// Key is a generated key.
type Key struct {
	ID, APIID, Plain, Hash string
	Orphan, Mismatch       bool
}

// Fixture is what Build wrote.
type Fixture struct {
	Path   string
	AESKey []byte
	Keys   []Key
}

// PlainKey makes a key the way the prototype did.
func PlainKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)[:32]
}

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Seal encrypts plain as the prototype did: nonce(12)‖ciphertext+tag.
func Seal(key []byte, plain string) []byte {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	gcm, _ := cipher.NewGCM(block)
	nonce := make([]byte, gcm.NonceSize())
	_, _ = rand.Read(nonce)
	return gcm.Seal(nonce, nonce, []byte(plain), nil)
}

// Build writes a prototype flm.db into dir and returns what it holds. It
// writes no AES key anywhere: WriteKeyFile or a keychain entry does.
func Build(dir string, o Options) (*Fixture, error) {
	f := &Fixture{Path: filepath.Join(dir, "flm.db"), AESKey: o.AESKey}
	if f.AESKey == nil {
		f.AESKey = make([]byte, 32)
		_, _ = rand.Read(f.AESKey)
	}
	u := url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(f.Path)}
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// Orphan keys (of a deleted API) break the foreign key on purpose.
	if _, err := db.Exec(`PRAGMA foreign_keys = off`); err != nil {
		return nil, err
	}
	if _, err := db.Exec(Schema); err != nil {
		return nil, err
	}
	mig := o.Migration
	if mig == 0 {
		mig = 1
	}
	if _, err := db.Exec(`INSERT INTO migrations VALUES (?, 'initial', '2025-01-01T00:00:00Z')`, mig); err != nil {
		return nil, err
	}
	n := 0
	addKey := func(apiID string, orphan, mismatch bool) error {
		n++
		k := Key{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), APIID: apiID, Plain: PlainKey(), Orphan: orphan, Mismatch: mismatch}
		k.Hash = hash(k.Plain)
		sealed := k.Plain
		if mismatch {
			sealed = PlainKey()
		}
		blob := Seal(f.AESKey, sealed)
		if o.Base64Blobs && n%2 == 0 {
			blob = []byte(base64.StdEncoding.EncodeToString(blob))
		}
		ts := fmt.Sprintf("2025-02-%02dT10:00:00+00:00", 1+n%27)
		if _, err := db.Exec(`INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?)`, k.ID, apiID, k.Hash, blob, ts, ts); err != nil {
			return err
		}
		f.Keys = append(f.Keys, k)
		return nil
	}
	for i, a := range o.APIs {
		ts := fmt.Sprintf("2025-01-%02dT09:00:00Z", 1+i)
		if _, err := db.Exec(`INSERT INTO apis (id, name, model, port, enable_auth, status, engine_type, created_at, updated_at) VALUES (?, ?, ?, ?, 1, 'running', 'ollama', ?, ?)`,
			a.ID, a.Name, a.Model, a.Port, ts, ts); err != nil {
			return nil, err
		}
		var wl any
		if a.Whitelist != "" {
			wl = a.Whitelist
		}
		if _, err := db.Exec(`INSERT INTO api_security_settings (api_id, ip_whitelist, rate_limit_enabled, rate_limit_requests, rate_limit_window_seconds) VALUES (?, ?, ?, ?, ?)`,
			a.ID, wl, a.RateLimit, a.Requests, a.Window); err != nil {
			return nil, err
		}
		for range a.Keys {
			if err := addKey(a.ID, false, false); err != nil {
				return nil, err
			}
		}
	}
	for range o.OrphanKeys {
		if err := addKey("deleted-api", true, false); err != nil {
			return nil, err
		}
	}
	for range o.MismatchKeys {
		if err := addKey(o.APIs[0].ID, false, true); err != nil {
			return nil, err
		}
	}
	if o.DuplicateHash && len(f.Keys) > 0 {
		if _, err := db.Exec(`UPDATE api_keys SET key_hash = ? WHERE id = ?`, f.Keys[0].Hash, f.Keys[len(f.Keys)-1].ID); err != nil {
			return nil, err
		}
	}
	for k, v := range o.Settings {
		if _, err := db.Exec(`INSERT INTO user_settings VALUES (?, ?, '2025-01-01T00:00:00Z')`, k, v); err != nil {
			return nil, err
		}
	}
	for i, e := range o.Engines {
		if _, err := db.Exec(`INSERT INTO engine_configs (id, engine_type, name, base_url) VALUES (?, ?, ?, ?)`, fmt.Sprint("eng-", i), e[0], fmt.Sprint(e[0], " ", i), e[1]); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// WriteKeyFile writes the AES key as the prototype's fallback file.
func (f *Fixture) WriteKeyFile() error {
	return writeFile(filepath.Join(filepath.Dir(f.Path), "encryption_key.bin"), f.AESKey)
}

// KeychainValue is the AES key as the prototype put it in the keychain.
func (f *Fixture) KeychainValue() []byte {
	return []byte(base64.StdEncoding.EncodeToString(f.AESKey))
}

// Standard is the fixture most tests use: two APIs, one restricted to
// 127.0.0.1 and 10.0.0.0/8 with 120 requests per minute, the other to
// 192.168.1.0/24 with 30 per 60 s; three keys, one orphan.
func Standard() Options {
	return Options{
		APIs: []API{
			{ID: "api-1", Name: "chat", Model: "llama3", Port: 8081, Whitelist: `["127.0.0.1","10.0.0.0/8"]`, RateLimit: true, Requests: 120, Window: 60, Keys: 2},
			{ID: "api-2", Name: "laptop", Model: "tiny", Port: 8082, Whitelist: `["192.168.1.0/24"]`, RateLimit: true, Requests: 30, Window: 60, Keys: 1},
		},
		Base64Blobs: true,
		OrphanKeys:  1,
		Settings:    map[string]string{"default_port": "8090", "language": "ja", "theme": "dark", "auto_start_ollama": "true"},
		Engines:     [][2]string{{"ollama", "http://127.0.0.1:11434"}, {"ollama", "http://192.168.1.5:11434"}, {"lmstudio", "ftp://bad"}},
	}
}
