package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/policy"
)

// SecurityCmd is `flm security`.
type SecurityCmd struct {
	Policy PolicyCmd `cmd:"" help:"Show or replace the security policy."`
	Backup BackupCmd `cmd:"" help:"Snapshot and restore the databases."`

	RotateDBKey RotateDBKeyCmd `cmd:"" name:"rotate-db-key" help:"Re-encrypt security.db and its backups under a new key."`
	ExportDBKey ExportDBKeyCmd `cmd:"" name:"export-db-key" help:"Write security.db's key to a file (to move the data dir to another machine)."`
	ImportDBKey ImportDBKeyCmd `cmd:"" name:"import-db-key" help:"Use a key written by export-db-key as security.db's key (moving a data dir, or restoring backups made under it)."`

	Certificates CertificatesCmd `cmd:"" help:"List or show the proxy's TLS certificates (https-acme, packaged-ca, dev-selfsigned)."`
	InstallCA    InstallCACmd    `cmd:"" name:"install-ca" help:"Put FLM's local CA (packaged-ca) into this machine's trust stores, with your consent."`
	UninstallCA  UninstallCACmd  `cmd:"" name:"uninstall-ca" help:"Remove FLM's local CA from this machine's trust stores."`
	DNSProviders DNSProvidersCmd `cmd:"" name:"dns-providers" help:"List the DNS providers https-acme's dns-01 challenge can use."`
}

// PolicyCmd is `flm security policy`.
type PolicyCmd struct {
	Show PolicyShowCmd `cmd:"" help:"Print the security policy."`
	Set  PolicySetCmd  `cmd:"" help:"Replace the whole policy after validating it."`
}

func (a *App) policies() (*policy.Service, error) {
	d, err := a.DB(store.Security)
	if err != nil {
		return nil, err
	}
	return &policy.Service{Store: store.Policy{DB: d}}, nil
}

type policyOut struct {
	ID         string          `json:"id"`
	PolicyJSON json.RawMessage `json:"policy_json"`
	UpdatedAt  string          `json:"updated_at,omitempty"`
	// Warnings names fields an earlier FLM stored that this one ignores.
	Warnings []string `json:"warnings,omitempty"`
}

func (a *App) printPolicy(s policy.Stored) error {
	doc := s.Policy.Document()
	return a.print(policyOut{ID: "default", PolicyJSON: doc, UpdatedAt: stamp(s.UpdatedAt), Warnings: s.Warnings}, func(w io.Writer) {
		writePolicyDoc(w, doc)
		for _, warn := range s.Warnings {
			fmt.Fprintf(w, "warning: %s\n", warn)
		}
	})
}

// writePolicyDoc prints the stored document indented, byte for byte
// otherwise: decoding it first would print an x_ value of 1e400 as null,
// round large integers, reorder keys and HTML-escape strings.
func writePolicyDoc(w io.Writer, doc []byte) {
	var buf bytes.Buffer
	if err := json.Indent(&buf, doc, "", "  "); err != nil {
		buf.Reset()
		buf.Write(doc) // Document is always valid JSON; never print less than it
	}
	buf.WriteByte('\n')
	_, _ = w.Write(buf.Bytes())
}

// PolicyShowCmd is `flm security policy show`.
type PolicyShowCmd struct{}

// Run prints the policy.
func (PolicyShowCmd) Run(a *App) error {
	svc, err := a.policies()
	if err != nil {
		return err
	}
	s, err := svc.Show(a.ctx)
	if err != nil {
		return err
	}
	return a.printPolicy(s)
}

// PolicySetCmd is `flm security policy set --file F | --json STR`.
type PolicySetCmd struct {
	File string `xor:"src" required:"" placeholder:"PATH" help:"Policy JSON file ('-' reads stdin)."`
	JSON string `xor:"src" required:"" name:"json" placeholder:"DOC" help:"Policy JSON document."`
}

// Run validates and stores the policy.
func (c PolicySetCmd) Run(a *App) error {
	doc := []byte(c.JSON)
	if c.File != "" {
		var err error
		if doc, err = readLimited(a, c.File, policy.MaxDocumentBytes); err != nil {
			return err
		}
	}
	svc, err := a.policies()
	if err != nil {
		return err
	}
	s, err := svc.Set(a.ctx, doc)
	if err != nil {
		return err
	}
	return a.printPolicySet(s)
}

// readLimited reads a policy file without ever holding more than limit+1
// bytes of it.
func readLimited(a *App, path string, limit int) ([]byte, error) {
	var r io.Reader = a.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, flmerr.Wrap(err, flmerr.InvalidArgument, "read policy file")
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, flmerr.Wrap(err, flmerr.InvalidArgument, "read policy file")
	}
	if len(b) > limit {
		return nil, flmerr.New(flmerr.PolicyInvalid, "policy document is larger than the %d-byte limit", limit)
	}
	return b, nil
}

// BackupCmd is `flm security backup`.
type BackupCmd struct {
	Create  BackupCreateCmd  `cmd:"" help:"Snapshot config.db and security.db into backups/ as one unit (the newest 3 units kept; automatic snapshots are counted apart)."`
	List    BackupListCmd    `cmd:"" help:"List snapshots."`
	Restore BackupRestoreCmd `cmd:"" help:"Restore a backup: both snapshots of its unit, all or nothing (the current state is snapshotted first)."`
}

func (a *App) backupDir() (string, error) {
	dir, err := a.DataDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "backups"), nil
}

func backupTable(w io.Writer, bs []store.Backup) {
	t := table(w, "FILE", "DB", "UNIT", "SCHEMA", "SIZE", "CREATED", "NOTE")
	for _, b := range bs {
		var notes []string
		switch {
		case b.KeyMismatch:
			notes = append(notes, "under another key (import-db-key to restore)")
		case b.Encrypted:
			notes = append(notes, "encrypted, key "+b.KeyID)
		}
		if b.Auto {
			notes = append(notes, "automatic")
		}
		t.row(b.Path, string(b.Kind), b.Unit, fmt.Sprint(b.SchemaVersion), fmt.Sprint(b.SizeBytes), stamp(b.CreatedAt), strings.Join(notes, "; "))
	}
	t.flush()
}

// BackupCreateCmd is `flm security backup create`.
type BackupCreateCmd struct{}

// Run snapshots both databases, as one unit: both are opened first, and
// nothing is written or pruned unless both snapshots are made.
func (BackupCreateCmd) Run(a *App) error {
	dir, err := a.backupDir()
	if err != nil {
		return err
	}
	var dbs []*store.DB
	var keys []store.Key
	for _, k := range []store.Kind{store.Config, store.Security} {
		d, err := a.DB(k)
		if err != nil {
			return err
		}
		dbs = append(dbs, d)
		if key := d.Key(); !key.IsZero() {
			keys = append(keys, key)
		}
	}
	made, err := store.SnapshotUnit(a.ctx, dir, time.Now(), store.SnapshotOptions{}, dbs...)
	if err != nil {
		return err
	}
	all, err := store.ListBackups(a.ctx, dir, keys...)
	if err != nil {
		return err
	}
	return a.print(map[string]any{"backups": made, "total_backups": len(all)}, func(w io.Writer) {
		backupTable(w, made)
	})
}

// BackupListCmd is `flm security backup list`.
type BackupListCmd struct{}

// Run lists snapshots, newest first.
func (BackupListCmd) Run(a *App) error {
	dir, err := a.backupDir()
	if err != nil {
		return err
	}
	all, err := store.ListBackups(a.ctx, dir, a.backupKeys()...)
	if err != nil {
		return err
	}
	return a.print(map[string]any{"backups": all}, func(w io.Writer) { backupTable(w, all) })
}

// BackupRestoreCmd is `flm security backup restore --file F`.
type BackupRestoreCmd struct {
	File string `required:"" placeholder:"PATH" help:"Either snapshot of the backup to restore (from backup list); the other snapshot of its unit is restored too."`
}

type restored = store.Restored

// Run validates every snapshot of the unit and opens every database it
// replaces, then restores them all or none (store.RestoreUnit). A unit
// that holds one database only restores it, with a warning saying so.
func (c BackupRestoreCmd) Run(a *App) error {
	src, err := filepath.Abs(c.File)
	if err != nil {
		return flmerr.Wrap(err, flmerr.InvalidArgument, "backup path")
	}
	files := append([]string{src}, store.Siblings(src)...)
	var keys []store.Key
	needsKey := false
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
			if b, err := store.Inspect(a.ctx, f); err != nil || b.Kind == store.Security {
				needsKey = true
			}
		}
	}
	if needsKey {
		if d, err := a.DB(store.Security); err == nil {
			if k := d.Key(); !k.IsZero() {
				keys = append(keys, k)
			}
		} else if b, ierr := store.Inspect(a.ctx, src); ierr != nil || b.Kind == store.Security {
			return err
		}
	}
	var unit []store.Backup
	for _, f := range files {
		b, err := store.Inspect(a.ctx, f, keys...)
		if err != nil {
			return err
		}
		if latest := store.SchemaVersion(b.Kind); b.SchemaVersion > latest {
			return flmerr.New(flmerr.InvalidArgument, "%s has schema version %d, newer than this flm supports (%d); upgrade flm to restore it", f, b.SchemaVersion, latest)
		}
		unit = append(unit, b)
	}
	dir, err := a.backupDir()
	if err != nil {
		return err
	}
	// Every database the unit replaces is opened before anything is
	// written: a key or file problem stops the restore with nothing done.
	dbs := map[store.Kind]*store.DB{}
	for _, b := range unit {
		d, err := a.DB(b.Kind)
		if err != nil {
			return fmt.Errorf("%w (nothing was restored)", err)
		}
		dbs[b.Kind] = d
	}
	out, err := store.RestoreUnit(a.ctx, dir, time.Now(), unit, dbs)
	if err != nil {
		return err
	}
	data, err := a.DataDir()
	if err != nil {
		return err
	}
	left := []string{}
	for _, k := range []store.Kind{store.Security, store.Config} {
		if _, ok := dbs[k]; !ok {
			left = append(left, filepath.Join(data, k.FileName()))
		}
	}
	if len(left) > 0 {
		a.warn("BACKUP_PARTIAL_UNIT", fmt.Sprintf("%s is a unit without a snapshot of %s (an automatic snapshot before a key rotation, key import or migration holds one database only; otherwise the other file was pruned, moved or never made): only %s was restored, and %s was left as it is",
			src, strings.Join(left, " and "), out[0].RestoredPath, strings.Join(left, " and ")))
	}
	first := out[0]
	for _, r := range out {
		if r.BackupPath == src {
			first = r
		}
	}
	res := map[string]any{"restored": out, "not_restored": left, "restored_path": first.RestoredPath, "backup_path": first.BackupPath, "kind": first.Kind,
		"previous_state_backup": first.PreviousStateBackup, "schema_version": first.SchemaVersion}
	return a.print(res, func(w io.Writer) {
		for _, r := range out {
			fmt.Fprintf(w, "Restored %s from %s.\nThe state it replaced is in %s.\n", r.RestoredPath, r.BackupPath, r.PreviousStateBackup)
		}
		for _, p := range left {
			fmt.Fprintf(w, "Not restored (no snapshot of it in this unit): %s.\n", p)
		}
	})
}
