package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
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
	ImportDBKey ImportDBKeyCmd `cmd:"" name:"import-db-key" help:"Make a key from export-db-key security.db's key."`
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
		var pretty any
		_ = json.Unmarshal(doc, &pretty)
		b, _ := json.MarshalIndent(pretty, "", "  ")
		fmt.Fprintf(w, "%s\n", b)
		for _, warn := range s.Warnings {
			fmt.Fprintf(w, "warning: %s\n", warn)
		}
	})
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
	Create  BackupCreateCmd  `cmd:"" help:"Snapshot config.db and security.db into backups/ (newest 3 of each kept)."`
	List    BackupListCmd    `cmd:"" help:"List snapshots."`
	Restore BackupRestoreCmd `cmd:"" help:"Restore a backup: both snapshots of its unit (the current state is snapshotted first)."`
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
		note := ""
		switch {
		case b.KeyMismatch:
			note = "under another key (import-db-key to restore)"
		case b.Encrypted:
			note = "encrypted, key " + b.KeyID
		}
		t.row(b.Path, string(b.Kind), b.Unit, fmt.Sprint(b.SchemaVersion), fmt.Sprint(b.SizeBytes), stamp(b.CreatedAt), note)
	}
	t.flush()
}

// BackupCreateCmd is `flm security backup create`.
type BackupCreateCmd struct{}

// Run snapshots both databases, as one unit.
func (BackupCreateCmd) Run(a *App) error {
	dir, err := a.backupDir()
	if err != nil {
		return err
	}
	now := time.Now()
	var made []store.Backup
	var keys []store.Key
	for _, k := range []store.Kind{store.Config, store.Security} {
		d, err := a.DB(k)
		if err != nil {
			return err
		}
		b, err := d.Snapshot(a.ctx, dir, now, "")
		if err != nil {
			return err
		}
		if key := d.Key(); !key.IsZero() {
			keys = append(keys, key)
		}
		made = append(made, b)
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

type restored struct {
	Kind                store.Kind `json:"kind"`
	BackupPath          string     `json:"backup_path"`
	RestoredPath        string     `json:"restored_path"`
	PreviousStateBackup string     `json:"previous_state_backup"`
	SchemaVersion       int        `json:"schema_version"`
}

// Run validates every snapshot of the unit, snapshots the live databases
// (as one unit), then restores security.db and config.db.
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
	// security.db first: it is the one whose restore can need a key.
	slices.SortStableFunc(unit, func(x, y store.Backup) int { return strings.Compare(string(y.Kind), string(x.Kind)) })
	dir, err := a.backupDir()
	if err != nil {
		return err
	}
	now := time.Now()
	var out []restored
	for _, b := range unit {
		d, err := a.DB(b.Kind)
		if err != nil {
			return err
		}
		// Nothing stored is ever lost: the state being replaced is kept too.
		safety, err := d.Snapshot(a.ctx, dir, now, b.Path)
		if err != nil {
			return fmt.Errorf("snapshot before restore: %w", err)
		}
		if err := d.Restore(a.ctx, b); err != nil {
			return err
		}
		out = append(out, restored{Kind: b.Kind, BackupPath: b.Path, RestoredPath: d.Path, PreviousStateBackup: safety.Path, SchemaVersion: d.Version()})
	}
	first := out[0]
	for _, r := range out {
		if r.BackupPath == src {
			first = r
		}
	}
	data := map[string]any{"restored": out, "restored_path": first.RestoredPath, "backup_path": first.BackupPath, "kind": first.Kind,
		"previous_state_backup": first.PreviousStateBackup, "schema_version": first.SchemaVersion}
	return a.print(data, func(w io.Writer) {
		for _, r := range out {
			fmt.Fprintf(w, "Restored %s from %s.\nThe state it replaced is in %s.\n", r.RestoredPath, r.BackupPath, r.PreviousStateBackup)
		}
	})
}
