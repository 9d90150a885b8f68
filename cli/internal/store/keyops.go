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
	"github.com/unjuno/flm/core/secret"
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

// CurrentKey reads security.db's key from its key source without opening
// the file, for diagnostics when the file itself cannot be opened (a
// damaged security.db still has healthy backups under this key).
func CurrentKey(ctx context.Context, dir string, cfg KeyConfig) (Key, error) {
	src, err := ResolveKeySource(ctx, dir, cfg)
	if err != nil {
		return Key{}, err
	}
	k, err := readKey(ctx, src, KeyFileName)
	if err != nil {
		return Key{}, keyErr(src, filepath.Join(dir, Security.FileName()), err)
	}
	return k, nil
}

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
	if fileExists(path + sufRotating) {
		// An interrupted rotation is finished (or undone) first, so that
		// the key exported is the one security.db and its backups are
		// under.
		if err := recoverLocked(ctx, dir, src); err != nil {
			return src, Key{}, err
		}
	}
	key, err := readKey(ctx, src, KeyFileName)
	if err != nil {
		return src, Key{}, keyErr(src, path, err)
	}
	if st, err := securityState(path); err == nil && st == stateEncrypted && !decrypts(path, key) {
		return src, Key{}, wrongKeyErr(path, src, key, errors.New("export refused"))
	}
	abs, _ := filepath.Abs(dir)
	what := fmt.Sprintf("FLM security.db key for %s, exported %s (key id %s).", abs, now.UTC().Format(time.RFC3339), key.ID())
	if err := writeKeyFile(file, key, what); err != nil {
		return src, Key{}, err
	}
	return src, key, nil
}

// recoverLocked finishes or undoes an interrupted rotation under the
// exclusive lock.
func recoverLocked(ctx context.Context, dir string, src KeySource) error {
	path := filepath.Join(dir, Security.FileName())
	lk, err := lockExclusiveFor(ctx, path)
	if err != nil {
		return err
	}
	defer lk.close()
	if !fileExists(path + sufRotating) {
		return nil
	}
	return recoverRotation(ctx, dir, src)
}

// writeKeyFile writes key in the export format to a new file (0600, never
// overwriting one), headed by what.
func writeKeyFile(file string, key Key, what string) error {
	body := fmt.Sprintf("# %s\n"+
		"# Anyone with this file and a copy of security.db or its backups can read them.\n"+
		"# Keep it offline; import it with `flm security import-db-key --file <this file>`.\n%s%s\n",
		what, keyFilePrefix, key.hex)
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return flmerr.New(flmerr.InvalidArgument, "%s already exists; flm never overwrites a file with a key: choose a new name", file)
		}
		return flmerr.Wrap(err, flmerr.InvalidArgument, "create key file")
	}
	if _, err := f.WriteString(body); err != nil {
		_ = f.Close()
		_ = os.Remove(file)
		return flmerr.Wrap(err, flmerr.IOError, "write key file")
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		_ = os.Remove(file)
		return flmerr.Wrap(err, flmerr.IOError, "write key file")
	}
	if err := f.Close(); err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "write key file")
	}
	keychain.SyncDir(filepath.Dir(file))
	return nil
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
	// Action: "stored" (no encrypted security.db: the key is used when it
	// is created or encrypted), "adopted" (the key opens security.db),
	// "reencrypted" (security.db and its backups were re-encrypted under
	// the imported key, so backups made under it can be restored).
	Action string `json:"action"`
	// Rotation, for "reencrypted", is what the re-encryption did.
	Rotation *RotateResult `json:"rotation,omitempty"`
	// BackupsReencrypted, for "stored" and "adopted", counts the security
	// snapshots that were under the replaced key and are now under the
	// imported one.
	BackupsReencrypted int `json:"backups_reencrypted,omitempty"`
	// ReplacedKeyID is the key the import replaced, when it differs.
	ReplacedKeyID string `json:"replaced_key_id,omitempty"`
	// ReplacedKeyFile holds the replaced key (export format, 0600) when
	// it may still be the only key to a file flm cannot reach: the
	// security.db that was moved away.
	ReplacedKeyFile string `json:"replaced_key_file,omitempty"`
	// RemovedKeyFile is set when the import moved the key out of the
	// data dir's fallback key file into the keychain.
	RemovedKeyFile string `json:"removed_key_file,omitempty"`
}

// ImportKey makes key security.db's key in the configured key source. It
// never drops the only key to data flm keeps: security.db and the
// snapshots under the current key are re-encrypted under the imported one,
// and a current key that may still open a security.db moved away is
// written to a file beside it (ReplacedKeyFile).
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
	defer lk.close()
	// An interrupted rotation is finished or undone first: its next key
	// may be the only key to backups it already re-encrypted.
	if fileExists(path + sufRotating) {
		if err := recoverRotation(ctx, dir, src); err != nil {
			return res, err
		}
	}
	removeStaleTemps(dir)
	st, err := securityState(path)
	if err != nil {
		return res, err
	}
	cur, curErr := readKey(ctx, src, KeyFileName)
	if curErr != nil && !errors.Is(curErr, secret.ErrNotFound) {
		// Never replace a key that cannot be read: it may be the only one.
		return res, keyErr(src, path, curErr)
	}
	hasCur := curErr == nil
	if hasCur && cur != key {
		res.ReplacedKeyID = cur.ID()
	}
	switch {
	case st != stateEncrypted:
		if err := importWithoutFile(ctx, dir, src, cur, key, now, &res); err != nil {
			return res, err
		}
	case decrypts(path, key):
		if hasCur && cur != key {
			// The snapshots under the key being replaced follow it, or
			// nothing would open them any more.
			n, err := reencryptBackups(ctx, filepath.Join(dir, "backups"), []Key{cur}, key)
			res.BackupsReencrypted = n
			if err != nil {
				return res, fmt.Errorf("%w (the current key, %s, is still the key: import again to finish)", err, cur.ID())
			}
		}
		if err := writeKey(ctx, src, KeyFileName, key); err != nil {
			return res, err
		}
		noteKeyID(path, key)
		if err := finishStale(ctx, dir, key); err != nil {
			return res, err
		}
		res.Action = "adopted"
	case hasCur && decrypts(path, cur):
		rot, err := rekeyLocked(ctx, dir, src, now, key)
		if err != nil {
			return res, err
		}
		res.Action, res.Rotation = "reencrypted", &rot
	default:
		why := "the current key is unavailable"
		if hasCur {
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

// importWithoutFile imports key when there is no encrypted security.db
// (none yet, or a plaintext one from an earlier version, or one moved
// away). A different current key is not simply overwritten: the snapshots
// under it are re-encrypted under key first, and when security.db was
// last under it (the key id record says so, or nothing says otherwise),
// the file that was moved away opens with it alone, so it is written to
// security.key.replaced-<key id> in the data dir (0600) before it is
// replaced.
func importWithoutFile(ctx context.Context, dir string, src KeySource, cur, key Key, now time.Time, res *ImportResult) error {
	path := filepath.Join(dir, Security.FileName())
	res.Action = "stored"
	if cur == key {
		return nil
	}
	if !cur.IsZero() {
		if id := readKeyID(path); id == "" || id == cur.ID() {
			file := filepath.Join(dir, KeyFileName+".replaced-"+cur.ID())
			if old, err := ReadKeyFile(file); err != nil || old != cur {
				what := fmt.Sprintf("FLM security.db key (key id %s) of %s, replaced by `flm security import-db-key` on %s: the security.db that was moved away from there opens with it.", cur.ID(), dir, now.UTC().Format(time.RFC3339))
				if err := writeKeyFile(file, cur, what); err != nil {
					return fmt.Errorf("keep the replaced key (nothing was changed): %w", err)
				}
			}
			res.ReplacedKeyFile = file
		}
		n, err := reencryptBackups(ctx, filepath.Join(dir, "backups"), []Key{cur}, key)
		res.BackupsReencrypted = n
		if err != nil {
			return fmt.Errorf("%w (the current key, %s, is still the key: import again to finish)", err, cur.ID())
		}
	}
	return writeKey(ctx, src, KeyFileName, key)
}

// OpenUnencryptedForTest opens security.db in dir as flm did before it was
// encrypted, to make the plaintext files the upgrade path starts from.
func OpenUnencryptedForTest(ctx context.Context, dir string) (*DB, error) {
	return Open(ctx, dir, Security, func(o *openOptions) { o.noCrypt = true })
}
