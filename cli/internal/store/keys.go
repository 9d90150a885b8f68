package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/unjuno/flm/cli/internal/keychain"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/secret"
)

// Cipher is the encrypting VFS security.db is opened through.
const Cipher = "adiantum"

// The names under which security.db's key is kept in its key source.
// KeyFileName is also the fallback key file in the data dir.
const (
	KeyFileName = "security.key"
	nextKeyName = "security.key.next"
)

// Key is security.db's 256-bit encryption key. It prints as "[redacted]"
// so that no format verb can put it in a message.
type Key struct{ hex string }

// NewKey returns a fresh random key.
func NewKey() Key {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return Key{hex.EncodeToString(b)}
}

// ParseKey accepts 64 hex digits (surrounding space ignored). The error
// never repeats the input.
func ParseKey(s string) (Key, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) != 64 {
		return Key{}, errors.New("a key is 64 hex digits (256 bits)")
	}
	if _, err := hex.DecodeString(s); err != nil {
		return Key{}, errors.New("a key is 64 hex digits (256 bits)")
	}
	return Key{s}, nil
}

// Hex is the key's text form, for the key source and export only.
func (k Key) Hex() string { return k.hex }

// IsZero reports whether k is unset.
func (k Key) IsZero() bool { return k.hex == "" }

// String implements fmt.Stringer without revealing the key.
func (k Key) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer without revealing the key.
func (k Key) GoString() string { return "store.Key{[redacted]}" }

// ID is a short, one-way identifier of the key, safe to show: it tells
// two keys apart without revealing either.
func (k Key) ID() string {
	sum := sha256.Sum256([]byte("flm security.db key id\x00" + k.hex))
	return hex.EncodeToString(sum[:6])
}

// Key source modes (--key-source, FLM_DB_KEY_SOURCE).
const (
	KeyAuto     = "auto"
	KeyKeychain = "keychain"
	KeyFile     = "file"
	KeyEnv      = "env"
)

// KeyConfig says where security.db's key comes from.
type KeyConfig struct {
	// Mode is auto (default: the OS keychain, or the key file when there is
	// no keychain), keychain, file, or env.
	Mode string
	// EnvKey is FLM_DB_KEY: the key itself, in hex, for containers.
	EnvKey string
	// Keychain is the OS keychain for the data dir; nil = keychain.New.
	Keychain keychain.OS
}

// KeyConfigFromEnv reads FLM_DB_KEY_SOURCE and FLM_DB_KEY.
func KeyConfigFromEnv(getenv func(string) string) KeyConfig {
	return KeyConfig{Mode: getenv("FLM_DB_KEY_SOURCE"), EnvKey: getenv("FLM_DB_KEY")}
}

// KeySource is the resolved place security.db's key lives.
type KeySource struct {
	// Kind is keychain, file or env.
	Kind string `json:"kind"`
	// Name describes it for people: "keychain (Secret Service)".
	Name string `json:"name"`
	// Fallback is set when the key file was chosen because there is no
	// keychain here.
	Fallback bool `json:"fallback"`
	// Warning, when set, is shown by every command that opens security.db.
	Warning string `json:"warning,omitempty"`

	store secret.Store
	// unreachable, for a fallback, is why the keychain could not be used.
	unreachable string
}

// Writable reports whether a new key can be stored (not FLM_DB_KEY).
func (s KeySource) Writable() bool { return s.Kind != KeyEnv }

// cached remembers answers for one resolved source: auto mode asks the
// keychain once to choose, and again to read the key. Failures are
// remembered too, so that a keychain that does not answer costs one
// timeout, not one per question.
type cached struct {
	inner secret.Store
	mu    sync.Mutex
	vals  map[string]cachedVal
}

type cachedVal struct {
	v   []byte
	err error
}

func (c *cached) Get(ctx context.Context, name string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.vals[name]; ok {
		return append([]byte(nil), r.v...), r.err
	}
	v, err := c.inner.Get(ctx, name)
	if ctx.Err() == nil {
		c.vals[name] = cachedVal{append([]byte(nil), v...), err}
	}
	return v, err
}

func (c *cached) Put(ctx context.Context, name string, v []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.vals, name)
	return c.inner.Put(ctx, name, v)
}

func (c *cached) Delete(ctx context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.vals, name)
	return c.inner.Delete(ctx, name)
}

// envStore serves FLM_DB_KEY: one read-only key.
type envStore struct{ key Key }

func (e envStore) Get(_ context.Context, name string) ([]byte, error) {
	if name == KeyFileName {
		return []byte(e.key.hex), nil
	}
	return nil, fmt.Errorf("%s: %w", name, secret.ErrNotFound)
}

func (e envStore) Put(context.Context, string, []byte) error {
	return fmt.Errorf("the key comes from FLM_DB_KEY: %w", secret.ErrReadOnly)
}

func (e envStore) Delete(_ context.Context, name string) error {
	if name == KeyFileName {
		return fmt.Errorf("the key comes from FLM_DB_KEY: %w", secret.ErrReadOnly)
	}
	return fmt.Errorf("%s: %w", name, secret.ErrNotFound)
}

func fileWarning(path string, why string) string {
	return fmt.Sprintf("security.db's key is stored in the file %s%s: anyone who can read the data dir can decrypt security.db and its backups. Use an OS keychain where there is one (`flm --key-source keychain security import-db-key --file %s`)", path, why, path)
}

// ResolveKeySource chooses where the key for the data dir lives. It never
// chooses the key file silently: a fallback carries a Warning.
func ResolveKeySource(ctx context.Context, dir string, cfg KeyConfig) (KeySource, error) {
	mode := strings.ToLower(strings.TrimSpace(cfg.Mode))
	if mode == "" {
		mode = KeyAuto
	}
	switch mode {
	case KeyAuto, KeyKeychain, KeyFile, KeyEnv:
	default:
		return KeySource{}, flmerr.New(flmerr.InvalidArgument, "unknown key source %q: use auto, keychain, file or env", cfg.Mode)
	}
	if cfg.EnvKey != "" || mode == KeyEnv {
		if mode != KeyAuto && mode != KeyEnv {
			return KeySource{}, flmerr.New(flmerr.InvalidArgument, "FLM_DB_KEY is set and the key source is %q: unset one of them", mode)
		}
		k, err := ParseKey(cfg.EnvKey)
		if err != nil {
			return KeySource{}, flmerr.New(flmerr.InvalidArgument, "FLM_DB_KEY is not a usable key: %v", err)
		}
		return KeySource{Kind: KeyEnv, Name: "environment variable FLM_DB_KEY", store: envStore{k}}, nil
	}
	file := keychain.File{Dir: dir}
	fileSrc := KeySource{Kind: KeyFile, Name: "file " + file.Path(KeyFileName), store: file}
	if mode == KeyFile {
		fileSrc.Warning = fileWarning(file.Path(KeyFileName), " (--key-source file)")
		return fileSrc, nil
	}
	kc := cfg.Keychain
	if kc == nil {
		kc = keychain.New(dir, nil)
	}
	kcSrc := KeySource{Kind: KeyKeychain, Name: "keychain (" + kc.Name() + ")", store: &cached{inner: kc, vals: map[string]cachedVal{}}}
	if mode == KeyKeychain {
		return kcSrc, nil
	}
	_, err := kcSrc.store.Get(ctx, KeyFileName)
	switch {
	case err == nil:
		return kcSrc, nil
	case errors.Is(err, secret.ErrNotFound):
		if _, serr := os.Stat(file.Path(KeyFileName)); serr == nil {
			fileSrc.Warning = fileWarning(file.Path(KeyFileName), " although a keychain is available")
			return fileSrc, nil
		}
		return kcSrc, nil
	case errors.Is(err, secret.ErrTimeout):
		// A keychain that does not answer is there (hung, or waiting for
		// something): never a downgrade to the key file.
		return kcSrc, nil
	case errors.Is(err, secret.ErrUnavailable):
		fileSrc.Fallback = true
		fileSrc.Name += " (fallback: no OS keychain)"
		fileSrc.Warning = fileWarning(file.Path(KeyFileName), " because there is no OS keychain here ("+shortErr(err)+")")
		fileSrc.unreachable = shortErr(err)
		return fileSrc, nil
	}
	// Locked, or failing: never a downgrade; the error surfaces when the
	// key is read.
	return kcSrc, nil
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// keyErr turns a key source failure into DB_KEY_UNAVAILABLE with what to
// do about it.
func keyErr(src KeySource, dbPath string, err error) error {
	switch {
	case errors.Is(err, secret.ErrLocked):
		return flmerr.Wrap(err, flmerr.DBKeyUnavailable, "cannot read security.db's key from the %s", src.Name)
	case errors.Is(err, secret.ErrTimeout):
		return flmerr.Wrap(err, flmerr.DBKeyUnavailable, "the %s did not answer when asked for security.db's key: its daemon may be hung (restart it, or log out and back in), then retry. flm never falls back to a key file when the keychain does not answer", src.Name)
	case errors.Is(err, secret.ErrNotFound) && src.Fallback:
		// No keychain reachable and no key file: security.db was made where
		// a keychain held its key (a desktop session this process, run
		// over SSH or from a service, cannot reach), not damaged.
		id := ""
		if k := readKeyID(dbPath); k != "" {
			id = " (key id " + k + ")"
		}
		return flmerr.Wrap(err, flmerr.DBKeyUnavailable,
			"%s is encrypted%s, and this session can reach no OS keychain (%s) and has no key file %s: its key is most likely in the OS keychain of your desktop session, which this process cannot reach. The file is not damaged: do not move it away. Run flm where that keychain is reachable (a terminal of the desktop session; over SSH, with that session's DBUS_SESSION_BUS_ADDRESS), or there run `flm security export-db-key --file key.txt` and here `flm --key-source file security import-db-key --file key.txt`",
			dbPath, id, src.unreachable, keyFilePath(filepath.Dir(dbPath)))
	case errors.Is(err, secret.ErrNotFound):
		return flmerr.Wrap(err, flmerr.DBKeyUnavailable,
			"%s is encrypted, and its key is not in the %s. If the data dir came from another machine or path, import its key with `flm security import-db-key --file <key file>` (made there by `flm security export-db-key`); if the key is lost, move %s away and restore a backup made under a key you have",
			dbPath, src.Name, dbPath)
	case errors.Is(err, secret.ErrUnavailable):
		return flmerr.Wrap(err, flmerr.DBKeyUnavailable, "cannot reach the %s for security.db's key; run flm in the session that holds the keychain, or choose --key-source file / FLM_DB_KEY", src.Name)
	}
	return flmerr.Wrap(err, flmerr.DBKeyUnavailable, "cannot read security.db's key from the %s", src.Name)
}

// readKey gets a named key from the source; a malformed value is an error
// that never shows it.
func readKey(ctx context.Context, src KeySource, name string) (Key, error) {
	b, err := src.store.Get(ctx, name)
	if err != nil {
		return Key{}, err
	}
	defer clear(b)
	k, perr := ParseKey(string(b))
	if perr != nil {
		return Key{}, fmt.Errorf("the stored %s is not a key (%v)", name, perr)
	}
	return k, nil
}

func writeKey(ctx context.Context, src KeySource, name string, k Key) error {
	if !src.Writable() {
		return flmerr.New(flmerr.InvalidArgument, "security.db's key comes from FLM_DB_KEY, which flm cannot change; unset it and choose a key source that can hold a new key")
	}
	if err := src.store.Put(ctx, name, []byte(k.hex)); err != nil {
		return keyErr(src, "security.db", err)
	}
	return nil
}

// fileExists reports whether path exists (any error but "not exist" counts
// as existing, so that a permission problem is not mistaken for absence).
func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// keyFilePath is the fallback key file of dir.
func keyFilePath(dir string) string { return filepath.Join(dir, KeyFileName) }
