package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/unjuno/flm/cli/internal/keychain"
	"github.com/unjuno/flm/core/flmerr"
)

// Encryption describes how security.db is protected, for `flm check`.
type Encryption struct {
	Encrypted bool      `json:"encrypted"`
	Cipher    string    `json:"cipher"`
	KeySource KeySource `json:"key_source"`
	KeyID     string    `json:"key_id"`
}

// Encryption reports d's protection (zero for config.db).
func (d *DB) Encryption() Encryption {
	if d.key.IsZero() {
		return Encryption{}
	}
	return Encryption{Encrypted: true, Cipher: Cipher, KeySource: d.source, KeyID: d.key.ID()}
}

// KeySource is where d's key came from.
func (d *DB) KeySource() KeySource { return d.source }

// keyFileHeader starts an exported key file.
const keyFilePrefix = "flm-db-key-v1:"

// ExportKey writes security.db's current key to file (created 0600, never
// overwriting). The key must open security.db when there is one: an export
// that cannot decrypt anything would only mislead.
func ExportKey(ctx context.Context, dir string, cfg KeyConfig, file string, now time.Time) (KeySource, Key, error) {
	path := filepath.Join(dir, Security.FileName())
	src, err := ResolveKeySource(ctx, dir, cfg)
	if err != nil {
		return KeySource{}, Key{}, err
	}
	key, err := readKey(ctx, src, KeyFileName)
	if err != nil {
		return src, Key{}, keyErr(src, path, err)
	}
	if st, err := securityState(path); err == nil && st == stateEncrypted && !decrypts(path, key) {
		return src, Key{}, wrongKeyErr(path, src, key, errors.New("export refused"))
	}
	abs, _ := filepath.Abs(dir)
	body := fmt.Sprintf("# FLM security.db key for %s, exported %s (key id %s).\n"+
		"# Anyone with this file and a copy of security.db or its backups can read them.\n"+
		"# Keep it offline; import it with `flm security import-db-key --file <this file>`.\n%s%s\n",
		abs, now.UTC().Format(time.RFC3339), key.ID(), keyFilePrefix, key.hex)
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return src, Key{}, flmerr.New(flmerr.InvalidArgument, "%s already exists; flm never overwrites a file with a key: choose a new name", file)
		}
		return src, Key{}, flmerr.Wrap(err, flmerr.InvalidArgument, "create key file")
	}
	if _, err := f.WriteString(body); err != nil {
		_ = f.Close()
		_ = os.Remove(file)
		return src, Key{}, flmerr.Wrap(err, flmerr.IOError, "write key file")
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		_ = os.Remove(file)
		return src, Key{}, flmerr.Wrap(err, flmerr.IOError, "write key file")
	}
	if err := f.Close(); err != nil {
		return src, Key{}, flmerr.Wrap(err, flmerr.IOError, "write key file")
	}
	return src, key, nil
}

// ReadKeyFile parses an exported key file (or a file holding just the 64
// hex digits). Errors never quote the file's contents.
func ReadKeyFile(file string) (Key, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return Key{}, flmerr.Wrap(err, flmerr.InvalidArgument, "read key file")
	}
	defer clear(b)
	if len(b) > 64<<10 {
		return Key{}, flmerr.New(flmerr.InvalidArgument, "%s is not a key file (too large)", file)
	}
	var found []Key
	for _, line := range bytes.Split(b, []byte("\n")) {
		l := strings.TrimSpace(string(line))
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, err := ParseKey(strings.TrimPrefix(l, keyFilePrefix))
		if err != nil {
			return Key{}, flmerr.New(flmerr.InvalidArgument, "%s is not a key file: %v", file, err)
		}
		found = append(found, k)
	}
	if len(found) != 1 {
		return Key{}, flmerr.New(flmerr.InvalidArgument, "%s is not a key file: it must hold exactly one key (found %d)", file, len(found))
	}
	return found[0], nil
}

// ImportResult says what an import did.
type ImportResult struct {
	KeySource KeySource `json:"key_source"`
	KeyID     string    `json:"key_id"`
	// Action: "stored" (no encrypted security.db yet), "adopted" (the key
	// opens security.db), "reencrypted" (security.db and its backups were
	// re-encrypted under the imported key, so backups made under it can
	// be restored).
	Action string `json:"action"`
	// Rotation, for "reencrypted", is what the re-encryption did.
	Rotation *RotateResult `json:"rotation,omitempty"`
	// RemovedKeyFile is set when the import moved the key out of the
	// data dir's fallback key file into the keychain.
	RemovedKeyFile string `json:"removed_key_file,omitempty"`
}

// ImportKey makes key security.db's key in the configured key source.
func ImportKey(ctx context.Context, dir string, cfg KeyConfig, key Key, now time.Time) (ImportResult, error) {
	path := filepath.Join(dir, Security.FileName())
	src, err := ResolveKeySource(ctx, dir, cfg)
	if err != nil {
		return ImportResult{}, err
	}
	if !src.Writable() {
		return ImportResult{}, flmerr.New(flmerr.InvalidArgument, "the key source is FLM_DB_KEY, which flm cannot write: unset it to import a key into the keychain or key file")
	}
	res := ImportResult{KeySource: src, KeyID: key.ID()}
	lk, err := lockExclusiveFor(ctx, path)
	if err != nil {
		return res, err
	}
	st, err := securityState(path)
	if err != nil {
		lk.close()
		return res, err
	}
	cur, curErr := readKey(ctx, src, KeyFileName)
	switch {
	case st != stateEncrypted:
		if err := writeKey(ctx, src, KeyFileName, key); err != nil {
			lk.close()
			return res, err
		}
		res.Action = "stored"
		lk.close()
	case decrypts(path, key):
		if fileExists(path + sufRotating) {
			_ = src.store.Delete(ctx, nextKeyName)
			_ = os.Remove(path + sufRotating)
		}
		if err := writeKey(ctx, src, KeyFileName, key); err != nil {
			lk.close()
			return res, err
		}
		err := finishStale(ctx, dir, key)
		lk.close()
		if err != nil {
			return res, err
		}
		res.Action = "adopted"
	case curErr == nil && decrypts(path, cur):
		lk.close()
		rot, err := rekey(ctx, dir, cfg, now, key)
		if err != nil {
			return res, err
		}
		res.Action, res.Rotation = "reencrypted", &rot
	default:
		lk.close()
		why := "the current key is unavailable"
		if curErr == nil {
			why = "neither does the current key"
		}
		return res, flmerr.New(flmerr.DBKeyUnavailable, "the imported key (key id %s) does not decrypt %s, and %s; nothing was changed. Import the key the file was encrypted with, or move %s away and restore a backup", key.ID(), path, why, path)
	}
	// Moving the key into the keychain retires the fallback key file.
	if src.Kind == KeyKeychain {
		fileKey, err := readKey(ctx, KeySource{store: keychain.File{Dir: dir}}, KeyFileName)
		if err == nil && fileKey == key {
			if err := keychain.Shred(keyFilePath(dir)); err == nil {
				res.RemovedKeyFile = keyFilePath(dir)
			}
		}
	}
	return res, nil
}

// OpenUnencryptedForTest opens security.db in dir as flm did before it was
// encrypted, to make the plaintext files the upgrade path starts from.
func OpenUnencryptedForTest(ctx context.Context, dir string) (*DB, error) {
	return Open(ctx, dir, Security, func(o *openOptions) { o.noCrypt = true })
}
