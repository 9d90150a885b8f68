package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/unjuno/flm/cli/internal/keychain"
	"github.com/unjuno/flm/cli/internal/legacy"
	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/core/settings"
)

// MigrateCmd is `flm migrate`.
type MigrateCmd struct {
	Legacy LegacyCmd `cmd:"" help:"Bring over a prototype install (its flm.db), API keys still working."`
}

// LegacyCmd is `flm migrate legacy`.
type LegacyCmd struct {
	Plan    LegacyPlanCmd    `cmd:"" help:"Read the prototype's flm.db (read-only) and print and write the migration plan."`
	Convert LegacyConvertCmd `cmd:"" help:"Write the converted data into --out for review (nothing else changes)."`
	Apply   LegacyApplyCmd   `cmd:"" help:"Back up config.db and security.db, import, check; roll back on any failure."`
}

// The files of a migration under the data dir.
const (
	migrationsDir   = "migrations"
	applyJournal    = "apply.json"   // present only while an apply runs
	appliedRecord   = "applied.json" // what the last successful apply imported
	convertMarker   = ".flm-legacy-convert"
	planFileName    = "migration-plan.json"
	legacyLogSubdir = "migrations"
)

// journal is apply.json: written and synced before the first write, it
// names the backups that undo the apply.
type journal struct {
	ApplyID   string    `json:"apply_id"`
	StartedAt time.Time `json:"started_at"`
	Legacy    string    `json:"legacy_path"`
	Backups   []string  `json:"backups"`
}

// appliedRec is applied.json, written atomically as the commit point.
type appliedRec struct {
	ApplyID    string            `json:"apply_id"`
	AppliedAt  time.Time         `json:"applied_at"`
	Legacy     string            `json:"legacy_path"`
	LegacySHA  string            `json:"legacy_sha256"`
	KeyIDs     []string          `json:"api_key_ids"`
	Labels     []string          `json:"api_key_labels"`
	Policy     json.RawMessage   `json:"policy"`
	Ports      []int             `json:"proxy_profile_ports"`
	Settings   map[string]string `json:"settings"`
	EngineIDs  []string          `json:"engine_ids"`
	BackupUnit []string          `json:"backups"`
}

func (a *App) legacyPlan(from string) (*legacy.Plan, error) {
	path, err := legacy.Locate(from)
	if err != nil {
		return nil, err
	}
	dir, err := a.DataDir()
	if err != nil {
		return nil, err
	}
	kc := a.keychain
	if kc == nil {
		kc = keychain.New(dir, a.Getenv)
	}
	var lookup legacy.KeyLookup
	if g, ok := kc.(keychain.Generic); ok {
		lookup = g.GetGeneric
	}
	snap, err := legacy.Read(a.ctx, path, legacy.Options{Keychain: lookup})
	if err != nil {
		return nil, err
	}
	return legacy.BuildPlan(snap)
}

func planText(w io.Writer, p *legacy.Plan) {
	fmt.Fprintf(w, "Legacy file: %s (schema %d, AES key: %s)\n", p.Source.Path, p.Source.Migration, p.Source.AESKeySource)
	t := table(w, "API KEY", "LABEL", "CREATED", "STATUS", "RPM", "CHECK")
	for _, k := range p.Keys {
		st := "active"
		if k.RevokedAt != nil {
			st = "revoked"
		}
		t.row(k.ID, k.Label, stamp(k.CreatedAt), st, rpmCell(k.RPM), k.Check)
	}
	t.flush()
	fmt.Fprintf(w, "Policy: %s\n", p.Policy)
	for _, pr := range p.Profiles {
		fmt.Fprintf(w, "Proxy profile %s: port %d (from API %s)\n", pr.ID, pr.Config.Port, pr.API)
	}
	for _, e := range p.Engines {
		fmt.Fprintf(w, "Engine %s: %s %s (from %s)\n", e.ID, e.Kind, e.BaseURL, e.From)
	}
	for _, k := range slices.Sorted(mapKeysOf(p.Settings)) {
		fmt.Fprintf(w, "Setting %s = %s\n", k, p.Settings[k])
	}
	for _, d := range p.Dropped {
		fmt.Fprintf(w, "Dropped: %s: %s\n", d.What, d.Why)
	}
	for _, x := range p.Warnings {
		fmt.Fprintf(w, "warning: %s\n", x)
	}
}

func mapKeysOf[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return flmerr.Wrap(err, flmerr.Internal, "encode %s", filepath.Base(path))
	}
	if err := keychain.WriteFileAtomic(path, append(b, '\n')); err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "write %s", path)
	}
	return nil
}

// LegacyPlanCmd is `flm migrate legacy plan`.
type LegacyPlanCmd struct {
	From string `required:"" placeholder:"FILE" help:"The prototype's flm.db, or the folder holding it."`
	Out  string `placeholder:"DIR" help:"Where to write migration-plan.json (default ./tmp/flm-migrate-<ts>)."`
}

// Run prints the plan and writes migration-plan.json.
func (c LegacyPlanCmd) Run(a *App) error {
	p, err := a.legacyPlan(c.From)
	if err != nil {
		return err
	}
	out := c.Out
	if out == "" {
		out = filepath.Join("tmp", "flm-migrate-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "create %s", out)
	}
	file := filepath.Join(out, planFileName)
	if err := writeJSON(file, p); err != nil {
		return err
	}
	return a.print(map[string]any{"plan": p, "plan_file": file}, func(w io.Writer) {
		planText(w, p)
		fmt.Fprintf(w, "Plan written to %s\n", file)
	})
}

// LegacyConvertCmd is `flm migrate legacy convert`.
type LegacyConvertCmd struct {
	From string `required:"" placeholder:"FILE" help:"The prototype's flm.db, or the folder holding it."`
	Out  string `required:"" placeholder:"DIR" help:"An empty folder (or one an earlier convert wrote) for the converted files."`
}

// Run writes settings.json, proxy_profiles.json, api_keys.json (hashes
// only), policy.json and engines.json into --out.
func (c LegacyConvertCmd) Run(a *App) error {
	p, err := a.legacyPlan(c.From)
	if err != nil {
		return err
	}
	if ents, err := os.ReadDir(c.Out); err == nil && len(ents) > 0 {
		if _, err := os.Stat(filepath.Join(c.Out, convertMarker)); err != nil {
			return flmerr.New(flmerr.InvalidArgument, "--out %s is not empty and was not written by `flm migrate legacy convert`; give an empty or new folder", c.Out)
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return flmerr.Wrap(err, flmerr.IOError, "read --out %s", c.Out)
	}
	if err := os.MkdirAll(c.Out, 0o700); err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "create %s", c.Out)
	}
	files := map[string]any{
		"settings.json":       p.Settings,
		"proxy_profiles.json": p.Profiles,
		"api_keys.json":       p.Keys,
		"policy.json":         p.Policy,
		"engines.json":        p.Engines,
		planFileName:          p,
		convertMarker:         map[string]string{"legacy_path": p.Source.Path, "legacy_sha256": p.Source.SHA256},
	}
	var written []string
	for _, name := range slices.Sorted(mapKeysOf(files)) {
		if err := writeJSON(filepath.Join(c.Out, name), files[name]); err != nil {
			return err
		}
		if name != convertMarker {
			written = append(written, filepath.Join(c.Out, name))
		}
	}
	return a.print(map[string]any{"out": c.Out, "files": written, "summary": p.Summary}, func(w io.Writer) {
		planText(w, p)
		fmt.Fprintf(w, "Converted files in %s\n", c.Out)
	})
}

// LegacyApplyCmd is `flm migrate legacy apply`.
type LegacyApplyCmd struct {
	From    string `required:"" placeholder:"FILE" help:"The prototype's flm.db, or the folder holding it."`
	Confirm bool   `help:"Really change config.db and security.db (they are backed up first)."`
}

// migrationLog appends lines to logs/migrations/<ts>.log. It never gets a
// key's plaintext or the AES key: only ids, counts and messages.
type migrationLog struct{ f *os.File }

func (a *App) openMigrationLog(dir string) *migrationLog {
	d := filepath.Join(dir, "logs", legacyLogSubdir)
	if os.MkdirAll(d, 0o700) != nil {
		return &migrationLog{}
	}
	f, err := os.OpenFile(filepath.Join(d, time.Now().UTC().Format("20060102T150405.000Z")+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return &migrationLog{}
	}
	return &migrationLog{f}
}

func (l *migrationLog) printf(format string, args ...any) {
	if l.f != nil {
		fmt.Fprintf(l.f, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
	}
}

func (l *migrationLog) close() {
	if l.f != nil {
		_ = l.f.Sync()
		_ = l.f.Close()
	}
}

// Run imports the plan. Order, for kill -9 at any moment: backups of both
// DBs → journal (synced) → security.db (one transaction) → config.db (one
// transaction) → checks → applied.json (atomic rename: the commit point)
// → journal removed. An apply interrupted before its commit point is
// rolled back from the journal's backups by the next `flm check` or
// `flm migrate legacy …`; after it, only the journal is removed.
func (c LegacyApplyCmd) Run(a *App) error {
	p, err := a.legacyPlan(c.From)
	if err != nil {
		return err
	}
	if !c.Confirm {
		return flmerr.New(flmerr.InvalidArgument, "apply changes config.db and security.db: run `flm migrate legacy plan --from %s` to see what it does, then add --confirm", c.From)
	}
	dir, err := a.DataDir()
	if err != nil {
		return err
	}
	log := a.openMigrationLog(dir)
	defer log.close()
	log.printf("apply from %s (sha256 %s): %d keys, %d profiles, %d engines, %d settings, %d dropped", p.Source.Path, p.Source.SHA256, len(p.Keys), len(p.Profiles), len(p.Engines), len(p.Settings), len(p.Dropped))
	// One apply at a time, and no recovery (flm check, any command that
	// opens the DBs) rolls back an apply that is still running.
	release, err := a.lockLegacyApply(dir)
	if err != nil {
		return err
	}
	defer release()
	if err := a.recoverLegacyApply(); err != nil {
		log.printf("recovery of an earlier apply failed: %v", err)
		return err
	}
	cfg, err := a.DB(store.Config)
	if err != nil {
		return err
	}
	sec, err := a.DB(store.Security)
	if err != nil {
		return err
	}
	for _, d := range []*store.DB{cfg, sec} {
		if ro := d.ReadOnly(); ro != nil {
			return ro
		}
	}
	// Applying the same file twice: harmless, nothing changes.
	if prev, err := readApplied(dir); err == nil && prev.LegacySHA == p.Source.SHA256 {
		log.printf("already applied at %s; nothing changed", prev.AppliedAt.Format(time.RFC3339))
		return a.print(map[string]any{"already_applied": true, "applied_at": prev.AppliedAt, "summary": p.Summary}, func(w io.Writer) {
			fmt.Fprintf(w, "%s was already applied at %s; nothing changed.\n", p.Source.Path, stamp(prev.AppliedAt))
		})
	}
	keys := store.APIKeys{DB: sec}
	for _, k := range p.Keys {
		if _, err := keys.ByHash(a.ctx, k.Hash); err == nil {
			return flmerr.New(flmerr.InvalidArgument, "api key %s of the legacy file is already in security.db (imported from another copy of this flm.db?); nothing was changed", k.LegacyID)
		}
	}
	existing, err := (store.Engines{DB: cfg}).ListEndpoints(a.ctx)
	if err != nil {
		return err
	}
	for _, e := range p.Engines {
		if slices.ContainsFunc(existing, func(x engine.Endpoint) bool { return x.ID == e.ID }) {
			return flmerr.New(flmerr.InvalidArgument, "engine id %s is already in use (an earlier migration?); remove it with `flm engines remove %s` or keep it; nothing was changed", e.ID, e.ID)
		}
	}

	now := time.Now().UTC()
	backups, err := store.SnapshotUnit(a.ctx, filepath.Join(dir, "backups"), now, store.SnapshotOptions{Auto: true, NoPrune: true}, cfg, sec)
	if err != nil {
		return flmerr.Wrap(err, flmerr.MigrationFailed, "back up config.db and security.db (nothing was changed)")
	}
	j := journal{ApplyID: newRequestID(), StartedAt: now, Legacy: p.Source.Path}
	for _, b := range backups {
		j.Backups = append(j.Backups, b.Path)
	}
	log.printf("backups: %s", strings.Join(j.Backups, ", "))
	mdir := filepath.Join(dir, migrationsDir)
	if err := os.MkdirAll(mdir, 0o700); err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "create %s", mdir)
	}
	if err := writeJSON(filepath.Join(mdir, applyJournal), j); err != nil {
		return err
	}
	fail := func(cause error) error {
		log.printf("apply failed: %v; rolling back", cause)
		if rerr := a.rollbackLegacy(j); rerr != nil {
			log.printf("ROLLBACK FAILED: %v", rerr)
			return flmerr.Wrap(cause, flmerr.MigrationFailed, "apply failed and the automatic rollback failed too (%v): restore %s by hand (docs/guides/MIGRATION_GUIDE.md)", rerr, strings.Join(j.Backups, " and "))
		}
		log.printf("rolled back")
		return flmerr.Wrap(cause, flmerr.MigrationFailed, "apply failed; config.db and security.db were restored from %s", strings.Join(j.Backups, " and "))
	}
	if err := sec.ImportSecurity(a.ctx, store.SecurityImport{Keys: p.Records(), PolicyJSON: p.Policy}, now); err != nil {
		return fail(err)
	}
	log.printf("security.db written: %d keys, policy", len(p.Keys))
	var imp store.ConfigImport
	for _, k := range slices.Sorted(mapKeysOf(p.Settings)) {
		imp.Settings = append(imp.Settings, settings.Value{Key: k, Value: p.Settings[k]})
	}
	for _, e := range p.Engines {
		imp.Endpoints = append(imp.Endpoints, engine.Endpoint{ID: e.ID, Kind: engine.Kind(e.Kind), BaseURL: e.BaseURL, UserAdded: true})
	}
	for _, pr := range p.Profiles {
		imp.Profiles = append(imp.Profiles, store.Profile{ID: pr.ID, Config: pr.Config})
	}
	if err := cfg.ImportConfig(a.ctx, imp, now); err != nil {
		return fail(err)
	}
	log.printf("config.db written: %d settings, %d engines, %d profiles", len(imp.Settings), len(imp.Endpoints), len(imp.Profiles))
	rec := appliedRec{ApplyID: j.ApplyID, AppliedAt: now, Legacy: p.Source.Path, LegacySHA: p.Source.SHA256, Policy: p.Policy, Settings: p.Settings, BackupUnit: j.Backups}
	for _, k := range p.Keys {
		rec.KeyIDs, rec.Labels = append(rec.KeyIDs, k.ID), append(rec.Labels, k.Label)
	}
	for _, pr := range p.Profiles {
		rec.Ports = append(rec.Ports, pr.Config.Port)
	}
	for _, e := range p.Engines {
		rec.EngineIDs = append(rec.EngineIDs, e.ID)
	}
	// The checks `flm check` runs, and the comparison with the legacy file.
	var ck checker
	for _, d := range []*store.DB{cfg, sec} {
		if err := d.QuickCheck(a.ctx); err != nil {
			ck.add(string(d.Kind)+"_db.integrity", "error", "%v", err)
		}
	}
	checkSecurity(a.ctx, &ck, sec)
	compareLegacy(a, &ck, cfg, sec, &rec, p)
	if ck.status() == "error" {
		var msgs []string
		for _, r := range ck.results {
			if r.Status == "error" {
				msgs = append(msgs, r.Name+": "+r.Message)
			}
		}
		return fail(flmerr.New(flmerr.MigrationFailed, "post-apply check failed: %s", strings.Join(msgs, "; ")))
	}
	if err := writeJSON(filepath.Join(mdir, appliedRecord), rec); err != nil {
		return fail(err)
	}
	_ = os.Remove(filepath.Join(mdir, applyJournal))
	keychain.SyncDir(mdir)
	log.printf("applied (%s)", j.ApplyID)
	proxies := a.applyToProxies(proxyctl.ReloadAll)
	return a.print(map[string]any{"applied": true, "summary": p.Summary, "backups": j.Backups, "checks": ck.results, "warnings_legacy": p.Warnings, "proxies": proxies}, func(w io.Writer) {
		fmt.Fprintf(w, "Imported %d API key(s), the policy, %d proxy profile(s), %d engine(s), %d setting(s) from %s.\nBackups: %s\n",
			len(p.Keys), len(p.Profiles), len(p.Engines), len(p.Settings), p.Source.Path, strings.Join(j.Backups, ", "))
		for _, x := range p.Warnings {
			fmt.Fprintf(w, "warning: %s\n", x)
		}
		proxiesText(w, proxies)
	})
}

func readApplied(dir string) (*appliedRec, error) {
	b, err := os.ReadFile(filepath.Join(dir, migrationsDir, appliedRecord))
	if err != nil {
		return nil, err
	}
	var r appliedRec
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// recoverLegacyApply finishes an apply a crash interrupted: committed
// (applied.json carries its id) → the journal is removed; otherwise both
// DBs are restored from the journal's backups.
//
// It only acts when no apply runs: an apply holds migrations/apply.lock for
// its whole run, and a journal seen while the lock is held elsewhere is an
// apply in progress, not an interrupted one.
func (a *App) recoverLegacyApply() error {
	dir, err := a.DataDir()
	if err != nil {
		return err
	}
	jp := filepath.Join(dir, migrationsDir, applyJournal)
	b, err := os.ReadFile(jp)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "read %s", jp)
	}
	if !a.legacyLockHeld {
		release, busy, err := store.TryLock(filepath.Join(dir, migrationsDir, applyLock))
		if err != nil {
			return err
		}
		if busy {
			a.warn("LEGACY_APPLY_RUNNING", "`flm migrate legacy apply` is running in another process")
			return nil
		}
		defer release()
		// Re-read: the apply may have finished between the read and the lock.
		if b, err = os.ReadFile(jp); errors.Is(err, os.ErrNotExist) {
			return nil
		} else if err != nil {
			return flmerr.Wrap(err, flmerr.IOError, "read %s", jp)
		}
	}
	var j journal
	if err := json.Unmarshal(b, &j); err != nil || len(j.Backups) == 0 {
		// Torn before any write (the journal is written before the
		// first one, atomically): nothing to undo.
		_ = os.Remove(jp)
		return nil
	}
	if rec, err := readApplied(dir); err == nil && rec.ApplyID == j.ApplyID {
		_ = os.Remove(jp)
		return nil
	}
	if err := a.rollbackLegacy(j); err != nil {
		return flmerr.Wrap(err, flmerr.MigrationFailed, "an interrupted `flm migrate legacy apply` could not be rolled back: restore %s by hand (docs/guides/MIGRATION_GUIDE.md)", strings.Join(j.Backups, " and "))
	}
	a.warn("LEGACY_APPLY_ROLLED_BACK", fmt.Sprintf("an interrupted `flm migrate legacy apply` (started %s) was rolled back from %s", j.StartedAt.Format(time.RFC3339), strings.Join(j.Backups, ", ")))
	return nil
}

// applyLock is held by a running apply (migrations/apply.lock).
const applyLock = "apply.lock"

// lockLegacyApply takes the apply lock or refuses: another apply runs.
func (a *App) lockLegacyApply(dir string) (func(), error) {
	mdir := filepath.Join(dir, migrationsDir)
	if err := os.MkdirAll(mdir, 0o700); err != nil {
		return nil, flmerr.Wrap(err, flmerr.IOError, "create %s", mdir)
	}
	release, busy, err := store.TryLock(filepath.Join(mdir, applyLock))
	if err != nil {
		return nil, err
	}
	if busy {
		return nil, flmerr.New(flmerr.InvalidArgument, "another `flm migrate legacy apply` is running; nothing was changed")
	}
	a.legacyLockHeld = true
	return func() { a.legacyLockHeld = false; release() }, nil
}

// rollbackLegacy restores both DBs from the journal's backups and removes
// the journal.
func (a *App) rollbackLegacy(j journal) error {
	dir, err := a.DataDir()
	if err != nil {
		return err
	}
	dbs := map[store.Kind]*store.DB{}
	var keys []store.Key
	for _, k := range []store.Kind{store.Config, store.Security} {
		d, err := a.DB(k)
		if err != nil {
			return err
		}
		dbs[k] = d
		if key := d.Key(); !key.IsZero() {
			keys = append(keys, key)
		}
	}
	var unit []store.Backup
	for _, p := range j.Backups {
		b, err := store.Inspect(a.ctx, p, keys...)
		if err != nil {
			return err
		}
		unit = append(unit, b)
	}
	if _, err := store.RestoreUnit(a.ctx, filepath.Join(dir, "backups"), time.Now(), unit, dbs); err != nil {
		return err
	}
	jp := filepath.Join(dir, migrationsDir, applyJournal)
	if err := os.Remove(jp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	keychain.SyncDir(filepath.Dir(jp))
	return nil
}

// compareLegacy compares what is stored with what the legacy file maps to
// (p, when it could be read) or, without it, with the apply record.
func compareLegacy(a *App, ck *checker, cfg, sec *store.DB, rec *appliedRec, p *legacy.Plan) {
	wantIDs, wantLabels, wantPolicy, wantPorts := rec.KeyIDs, rec.Labels, rec.Policy, rec.Ports
	if p != nil {
		wantIDs, wantLabels, wantPorts = nil, nil, nil
		for _, k := range p.Keys {
			wantIDs, wantLabels = append(wantIDs, k.ID), append(wantLabels, k.Label)
		}
		for _, pr := range p.Profiles {
			wantPorts = append(wantPorts, pr.Config.Port)
		}
		wantPolicy = p.Policy
	}
	recs, err := (store.APIKeys{DB: sec}).List(a.ctx)
	if err != nil {
		ck.add("legacy.api_keys", "error", "%v", err)
		return
	}
	byID := map[string]string{}
	for _, r := range recs {
		if r.Legacy {
			byID[r.ID] = r.Label
		}
	}
	var missing, relabeled []string
	for i, id := range wantIDs {
		l, ok := byID[id]
		switch {
		case !ok:
			missing = append(missing, id)
		case l != wantLabels[i]:
			relabeled = append(relabeled, fmt.Sprintf("%s (%q, legacy %q)", id, l, wantLabels[i]))
		}
	}
	switch {
	case len(missing) > 0:
		ck.add("legacy.api_keys", "error", "%d of %d legacy key(s) are missing: %s", len(missing), len(wantIDs), strings.Join(missing, ", "))
	case len(relabeled) > 0:
		ck.add("legacy.api_keys", "warning", "%d legacy key(s), labels changed since: %s", len(wantIDs), strings.Join(relabeled, ", "))
	default:
		ck.add("legacy.api_keys", "ok", "%d legacy key(s) present with their labels (%s)", len(wantIDs), strings.Join(uniq(wantLabels), ", "))
	}
	doc, _, err := (store.Policy{DB: sec}).Get(a.ctx)
	switch {
	case err != nil:
		ck.add("legacy.policy", "error", "%v", err)
	case jsonSame(doc, wantPolicy):
		ck.add("legacy.policy", "ok", "the policy equals the legacy mapping: %s", wantPolicy)
	default:
		ck.add("legacy.policy", "warning", "the policy %s differs from the legacy mapping %s (changed since the migration?)", doc, wantPolicy)
	}
	profs, err := cfg.Profiles(a.ctx)
	if err != nil {
		ck.add("legacy.proxy_profiles", "error", "%v", err)
		return
	}
	var have []int
	for _, pr := range profs {
		if strings.HasPrefix(pr.ID, "legacy-") {
			have = append(have, pr.Config.Port)
		}
	}
	slices.Sort(have)
	want := slices.Sorted(slices.Values(wantPorts))
	if slices.Equal(have, want) {
		ck.add("legacy.proxy_profiles", "ok", "proxy profile port(s) %v equal the legacy APIs' ports", want)
	} else {
		ck.add("legacy.proxy_profiles", "error", "proxy profile port(s) %v, legacy APIs' ports %v", have, want)
	}
}

func uniq(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func jsonSame(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
