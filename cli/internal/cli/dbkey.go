package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/unjuno/flm/cli/internal/keychain"
	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/flmerr"
)

// warning is printed with a command's output: in JSON, a "warnings" array
// beside "data" (or "error"); in text, "warning: …" lines after the output
// (on stderr with an error). stdout and stderr each stay one document.
type warning struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// warn records a warning once.
func (a *App) warn(code, msg string) {
	for _, w := range a.warnings {
		if w.Code == code && w.Message == msg {
			return
		}
	}
	a.warnings = append(a.warnings, warning{code, msg})
}

func (a *App) addWarnings(out map[string]any) {
	if len(a.warnings) > 0 {
		out["warnings"] = a.warnings
	}
}

func (a *App) printWarningsText(w io.Writer) {
	for _, x := range a.warnings {
		fmt.Fprintf(w, "warning: %s\n", x.Message)
	}
	a.warnings = nil
}

// keyConfig is where security.db's key comes from: --key-source, else
// FLM_DB_KEY_SOURCE; FLM_DB_KEY gives the key itself. The keychain finds
// its D-Bus session in the process environment, as a child process would.
func (a *App) keyConfig(dir string) store.KeyConfig {
	cfg := store.KeyConfigFromEnv(a.Getenv)
	if a.Globals.KeySource != "" {
		cfg.Mode = a.Globals.KeySource
	}
	cfg.Keychain = a.keychain
	if cfg.Keychain == nil {
		cfg.Keychain = keychain.New(dir, nil)
	}
	return cfg
}

// noteKeySource warns, on every command that opens security.db, when its
// key is kept in a file.
func (a *App) noteKeySource(d *store.DB) {
	if w := d.KeySource().Warning; w != "" {
		a.warn("DB_KEY_IN_FILE", w)
	}
}

// RotateDBKeyCmd is `flm security rotate-db-key`.
type RotateDBKeyCmd struct{}

// Help is the detailed help.
func (RotateDBKeyCmd) Help() string {
	return `Re-encrypts security.db and every security snapshot in backups/ under a new
random key, then stores that key in place of the old one (keychain or key
file). A snapshot of the current state is taken first. The old key no longer
opens anything flm keeps; snapshots made under other keys are left as they are
and listed. Stop the proxy first: the file is replaced.

A rotation interrupted at any moment (crash, kill, full disk) is finished or
undone by the next flm command; the database always opens with a key the key
source holds.`
}

// Run rotates the key.
func (RotateDBKeyCmd) Run(a *App) error {
	dir, err := a.DataDir()
	if err != nil {
		return err
	}
	res, err := store.RotateKey(a.ctx, dir, a.keyConfig(dir), time.Now())
	if res.KeySource.Warning != "" {
		a.warn("DB_KEY_IN_FILE", res.KeySource.Warning)
	}
	if err != nil {
		return err
	}
	return a.print(res, func(w io.Writer) {
		fmt.Fprintf(w, "security.db and %d backup(s) are now encrypted under key %s (was %s), kept in the %s.\n", res.BackupsRekeyed, res.NewKeyID, res.OldKeyID, res.KeySource.Name)
		fmt.Fprintf(w, "The state before the rotation is in %s.\n", res.Snapshot.Path)
		for _, p := range res.BackupsSkipped {
			fmt.Fprintf(w, "Not re-encrypted (made under another key): %s\n", p)
		}
	})
}

// ExportDBKeyCmd is `flm security export-db-key --file F`.
type ExportDBKeyCmd struct {
	File string `required:"" placeholder:"PATH" help:"File to write the key to (created 0600; never overwritten)."`
}

// Help is the detailed help.
func (ExportDBKeyCmd) Help() string {
	return `Writes security.db's key, in clear, to a new file: the escape hatch for moving
a data dir (or restoring its backups) on another machine, whose keychain does
not have the key. Anyone with that file and a copy of security.db or its
backups can read them: keep it offline, and delete it once imported.`
}

// Run exports the key.
func (c ExportDBKeyCmd) Run(a *App) error {
	dir, err := a.DataDir()
	if err != nil {
		return err
	}
	file, err := filepath.Abs(c.File)
	if err != nil {
		return flmerr.Wrap(err, flmerr.InvalidArgument, "key file path")
	}
	src, key, err := store.ExportKey(a.ctx, dir, a.keyConfig(dir), file, time.Now())
	if src.Warning != "" {
		a.warn("DB_KEY_IN_FILE", src.Warning)
	}
	if err != nil {
		return err
	}
	a.warn("DB_KEY_EXPORTED", fmt.Sprintf("%s holds security.db's key in clear: anyone with it and a copy of security.db or its backups can read them. Keep it offline and delete it from this machine once it is stored safely", file))
	out := map[string]any{"file": file, "key_id": key.ID(), "key_source": src}
	return a.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "Wrote key %s (from the %s) to %s.\n", key.ID(), src.Name, file)
	})
}

// ImportDBKeyCmd is `flm security import-db-key --file F`.
type ImportDBKeyCmd struct {
	File string `required:"" placeholder:"PATH" help:"Key file written by export-db-key."`
}

// Help is the detailed help.
func (ImportDBKeyCmd) Help() string {
	return `Makes the key in the file security.db's key, in the key source (the OS
keychain, or the key file with --key-source file):

  - security.db opens with it (a data dir copied from another machine): the
    key is stored (snapshots under the key it replaces are re-encrypted
    under it);
  - security.db opens with the current key instead (you want to restore a
    backup made under the imported key): security.db and its backups are
    re-encrypted under the imported key, then the backup can be restored;
  - no encrypted security.db (none yet, a plaintext one from an earlier
    version, or one moved away): the key is stored and used when security.db
    is created or encrypted. A different current key is never simply
    dropped: the snapshots in backups/ under it are re-encrypted under the
    imported key, and when the security.db moved away was under it, it is
    written to security.key.replaced-<key id> in the data dir (0600, said in
    the output): the only key to that file. Keep it offline.

When security.db exists and neither key opens it, the import is refused and
nothing changes. An interrupted key rotation is finished (or undone) first.
Importing into the keychain removes the data dir's fallback key file if it
held the same key.`
}

// Run imports the key.
func (c ImportDBKeyCmd) Run(a *App) error {
	dir, err := a.DataDir()
	if err != nil {
		return err
	}
	key, err := store.ReadKeyFile(c.File)
	if err != nil {
		return err
	}
	res, err := store.ImportKey(a.ctx, dir, a.keyConfig(dir), key, time.Now())
	if res.KeySource.Warning != "" {
		a.warn("DB_KEY_IN_FILE", res.KeySource.Warning)
	}
	if err != nil {
		return err
	}
	if abs, _ := filepath.Abs(c.File); res.RemovedKeyFile != abs {
		a.warn("DB_KEY_EXPORTED", fmt.Sprintf("%s still holds the key in clear; delete it once it is stored safely elsewhere", c.File))
	}
	if res.ReplacedKeyFile != "" {
		a.warn("DB_KEY_EXPORTED", fmt.Sprintf("the replaced key %s was written to %s (0600), in clear: it is the only key to the security.db that was moved away from the data dir (and to any snapshot kept outside backups/). Move it offline; import it again to read that file", res.ReplacedKeyID, res.ReplacedKeyFile))
	}
	return a.print(res, func(w io.Writer) {
		switch res.Action {
		case "adopted":
			fmt.Fprintf(w, "Key %s opens security.db; it is now kept in the %s.\n", res.KeyID, res.KeySource.Name)
		case "reencrypted":
			fmt.Fprintf(w, "security.db and %d backup(s) are now encrypted under the imported key %s (kept in the %s).\n", res.Rotation.BackupsRekeyed, res.KeyID, res.KeySource.Name)
		default:
			fmt.Fprintf(w, "Key %s stored in the %s; security.db will be encrypted with it.\n", res.KeyID, res.KeySource.Name)
		}
		if res.ReplacedKeyID != "" && res.Action != "reencrypted" {
			fmt.Fprintf(w, "It replaces key %s; %d backup(s) under that key are now under key %s.\n", res.ReplacedKeyID, res.BackupsReencrypted, res.KeyID)
		}
		if res.ReplacedKeyFile != "" {
			fmt.Fprintf(w, "The replaced key %s is in %s.\n", res.ReplacedKeyID, res.ReplacedKeyFile)
		}
		if res.RemovedKeyFile != "" {
			fmt.Fprintf(w, "Removed the fallback key file %s.\n", res.RemovedKeyFile)
		}
	})
}

// Help is `flm security backup --help`'s detail: how to recover.
func (BackupCmd) Help() string {
	return `A backup is one unit: the config and security snapshots taken at the same
moment (same stamp in the file name). Security snapshots are encrypted with
security.db's key. A snapshot is also taken automatically (names ending in
-auto) before every migration, key rotation, key import and restore; those of
a rotation, import or migration hold the one database they protect.

Retention counts units, never single files: the newest 3 units made by
"backup create" and, apart, the newest 3 automatic ones. A restore's own
snapshot prunes nothing, so trying backups one after another never deletes
the next one to try. Units with a snapshot under another key are never pruned.

A restore is all or nothing: both databases are opened, and checked to be
writable (not locked by another program), before anything is written; if the
second restore still fails, the first is put back and the error says what is
in place. A unit holding one database restores that one, with a
warning that the other was left as it is.

Recovery (stop → restore → start):
  1. flm proxy stop --all
  2. flm security backup list
  3. flm security backup restore --file <either file of the unit>
     (the current state is snapshotted first: a wrong restore is undone the
     same way)
  4. flm proxy start

If security.db itself cannot be opened (damaged), move it away first
(mv security.db security.db.damaged), then restore. A snapshot made under a key
this machine no longer has (another machine, or before a rotation) needs that
key: flm security import-db-key --file <key file>, then restore.`
}

// backupKeys opens security.db for the keys that open its snapshots. When
// it cannot be opened, listing still works, with a warning.
func (a *App) backupKeys() []store.Key {
	d, err := a.DB(store.Security)
	if err != nil {
		a.warn("DB_KEY_UNAVAILABLE", "security snapshots cannot be read: "+err.Error())
		return nil
	}
	if k := d.Key(); !k.IsZero() {
		return []store.Key{k}
	}
	return nil
}
