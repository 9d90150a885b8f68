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
	"github.com/unjuno/flm/core/policy"
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

// journalVersion 2: the journal carries the undo (what the apply adds
// and changes), never restored from whole-file backups. Version 1 (no
// "version") named only the backups.
const journalVersion = 2

// journal is apply.json: written and synced before the first write, it
// names exactly what the apply writes, so that an apply that never
// committed is undone row by row — without undoing what other processes
// wrote since (a revocation, audit rows, certificates, policy edits). The
// backups are for the manual procedure only. It holds no secret (key ids,
// policy documents, setting values).
type journal struct {
	Version   int                 `json:"version"`
	ApplyID   string              `json:"apply_id"`
	StartedAt time.Time           `json:"started_at"`
	Legacy    string              `json:"legacy_path"`
	Backups   []string            `json:"backups"`
	Security  *store.SecurityUndo `json:"undo_security,omitempty"`
	Config    *store.ConfigUndo   `json:"undo_config,omitempty"`
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
	// PreviousPolicy is the policy the apply replaced (--replace-policy).
	PreviousPolicy json.RawMessage `json:"previous_policy,omitempty"`
	// SettingsKept are legacy settings not applied: the install had them.
	SettingsKept []keptSetting `json:"settings_kept,omitempty"`
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

func planText(w io.Writer, p *legacy.Plan, d *installDiff) {
	safe := legacy.Safe
	fmt.Fprintf(w, "Legacy file: %s (schema %d, AES key: %s)\n", safe(p.Source.Path), p.Source.Migration, safe(p.Source.AESKeySource))
	t := table(w, "API KEY", "LABEL", "CREATED", "STATUS", "RPM", "CHECK")
	for _, k := range p.Keys {
		st := "active"
		if k.RevokedAt != nil {
			st = "revoked"
		}
		t.row(k.ID, safe(k.Label), stamp(k.CreatedAt), st, rpmCell(k.RPM), k.Check)
	}
	t.flush()
	fmt.Fprintf(w, "Policy (legacy mapping): %s\n", safe(string(p.Policy)))
	if d != nil {
		diffText(w, d)
	}
	for _, pr := range p.Profiles {
		fmt.Fprintf(w, "Proxy profile %s: port %d (from API %s)\n", pr.ID, pr.Config.Port, safe(pr.API))
	}
	for _, e := range p.Engines {
		fmt.Fprintf(w, "Engine %s: %s %s (from %s)\n", e.ID, e.Kind, safe(e.BaseURL), safe(e.From))
	}
	for _, k := range slices.Sorted(mapKeysOf(p.Settings)) {
		if d != nil && slices.ContainsFunc(d.SettingsKept, func(x keptSetting) bool { return x.Key == k }) {
			continue // diffText printed it
		}
		fmt.Fprintf(w, "Setting %s = %s\n", k, safe(p.Settings[k]))
	}
	for _, x := range p.Dropped {
		fmt.Fprintf(w, "Dropped: %s: %s\n", safe(x.What), safe(x.Why))
	}
	for _, x := range p.Warnings {
		fmt.Fprintf(w, "warning: %s\n", safe(x))
	}
}

func diffText(w io.Writer, d *installDiff) {
	safe := legacy.Safe
	switch d.PolicyChange {
	case policyUnchanged:
		fmt.Fprintf(w, "Policy (current): the same; it stays\n")
	case policyReplacesDefault:
		fmt.Fprintf(w, "Policy (current): %s (the default: replaced by the legacy mapping)\n", safe(string(d.CurrentPolicy)))
	case policyNeedsReplace:
		fmt.Fprintf(w, "Policy (current): %s (yours: apply refuses to replace it without --replace-policy)\n", safe(string(d.CurrentPolicy)))
	case policyReplaces:
		fmt.Fprintf(w, "Policy (current): %s (yours: replaced, --replace-policy)\n", safe(string(d.CurrentPolicy)))
	case policyUnknown:
		fmt.Fprintf(w, "Policy (current): not read (%s)\n", safe(d.Note))
	}
	for _, k := range d.SettingsKept {
		fmt.Fprintf(w, "Setting %s: kept your value %s (legacy %s)\n", k.Key, safe(k.Yours), safe(k.Legacy))
	}
	for _, id := range d.ProfilesPresent {
		fmt.Fprintf(w, "Proxy profile %s: already there with the same configuration\n", id)
	}
}

// Policy outcomes of an apply, next to the install's current policy.
const (
	policyUnchanged       = "unchanged"            // the install's policy is already the mapping
	policyReplacesDefault = "replaces_default"     // the install has the default policy
	policyNeedsReplace    = "needs_replace_policy" // the install has its own: refused without --replace-policy
	policyReplaces        = "replaces_yours"       // its own, and --replace-policy was given
	policyUnknown         = "unknown"              // plan only: the install could not be read
)

// keptSetting is a legacy setting the install already has: not applied.
type keptSetting struct {
	Key    string `json:"key"`
	Yours  string `json:"yours"`
	Legacy string `json:"legacy"`
}

// installDiff is how the plan meets the install: printed by plan and
// apply, and what apply adds.
type installDiff struct {
	CurrentPolicy   json.RawMessage   `json:"current_policy,omitempty"`
	NewPolicy       json.RawMessage   `json:"new_policy"`
	PolicyChange    string            `json:"policy_change"`
	SettingsAdded   map[string]string `json:"settings_added"`
	SettingsKept    []keptSetting     `json:"settings_kept"`
	ProfilesPresent []string          `json:"proxy_profiles_present,omitempty"`
	Note            string            `json:"note,omitempty"`

	currentDoc string               // the stored policy, byte for byte
	profiles   []legacy.PlanProfile // the profiles to add
	conflicts  []string             // profile ids holding another configuration
}

// isDefaultPolicy: doc is the policy a fresh install has (not the user's).
func isDefaultPolicy(doc []byte) bool {
	pol, err := policy.Parse(doc)
	return err == nil && bytes.Equal(pol.Document(), policy.Default().Document())
}

func samePolicy(a, b []byte) bool {
	x, errX := policy.Parse(a)
	y, errY := policy.Parse(b)
	if errX == nil && errY == nil {
		return bytes.Equal(x.Document(), y.Document())
	}
	return jsonSame(a, b)
}

// diffInstall compares p with what cfg and sec hold (either may be nil:
// the install has no such DB yet, i.e. defaults).
func (a *App) diffInstall(cfg, sec *store.DB, p *legacy.Plan, replacePolicy bool) (*installDiff, error) {
	d := &installDiff{NewPolicy: p.Policy, SettingsAdded: map[string]string{}, SettingsKept: []keptSetting{}, currentDoc: policy.DefaultDocument}
	if sec != nil {
		doc, _, err := (store.Policy{DB: sec}).Get(a.ctx)
		if err != nil {
			return nil, err
		}
		d.currentDoc = string(doc)
	}
	d.CurrentPolicy = json.RawMessage(d.currentDoc)
	if !json.Valid(d.CurrentPolicy) {
		d.CurrentPolicy, _ = json.Marshal(d.currentDoc)
	}
	switch {
	case samePolicy([]byte(d.currentDoc), p.Policy):
		d.PolicyChange = policyUnchanged
	case isDefaultPolicy([]byte(d.currentDoc)):
		d.PolicyChange = policyReplacesDefault
	case replacePolicy:
		d.PolicyChange = policyReplaces
	default:
		d.PolicyChange = policyNeedsReplace
	}
	stored := map[string]string{}
	var profs []store.Profile
	if cfg != nil {
		vals, err := (store.Settings{DB: cfg}).List(a.ctx)
		if err != nil {
			return nil, err
		}
		for _, v := range vals {
			stored[v.Key] = v.Value
		}
		if profs, err = cfg.Profiles(a.ctx); err != nil {
			return nil, err
		}
	}
	for _, k := range slices.Sorted(mapKeysOf(p.Settings)) {
		if v, ok := stored[k]; ok {
			if v != p.Settings[k] {
				d.SettingsKept = append(d.SettingsKept, keptSetting{k, v, p.Settings[k]})
			}
			continue
		}
		d.SettingsAdded[k] = p.Settings[k]
	}
	for _, pr := range p.Profiles {
		i := slices.IndexFunc(profs, func(x store.Profile) bool { return x.ID == pr.ID })
		if i < 0 {
			d.profiles = append(d.profiles, pr)
			continue
		}
		have, _ := store.ProfileJSON(profs[i].Config)
		want, _ := store.ProfileJSON(pr.Config)
		if have == want {
			d.ProfilesPresent = append(d.ProfilesPresent, pr.ID)
		} else {
			d.conflicts = append(d.conflicts, pr.ID)
		}
	}
	return d, nil
}

// planDiff is diffInstall for plan: it reads only DBs that exist (plan
// creates nothing) and never fails the plan.
func (a *App) planDiff(p *legacy.Plan) *installDiff {
	fail := func(err error) *installDiff {
		return &installDiff{NewPolicy: p.Policy, PolicyChange: policyUnknown, Note: "the current install could not be read: " + err.Error()}
	}
	dir, err := a.DataDir()
	if err != nil {
		return fail(err)
	}
	dbs := map[store.Kind]*store.DB{}
	for _, k := range []store.Kind{store.Config, store.Security} {
		if _, err := os.Stat(filepath.Join(dir, k.FileName())); err != nil {
			continue
		}
		if dbs[k], err = a.DB(k); err != nil {
			return fail(err)
		}
	}
	d, err := a.diffInstall(dbs[store.Config], dbs[store.Security], p, false)
	if err != nil {
		return fail(err)
	}
	return d
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
	d := a.planDiff(p)
	return a.print(map[string]any{"plan": p, "plan_file": file, "install": d}, func(w io.Writer) {
		planText(w, p, d)
		fmt.Fprintf(w, "Plan written to %s\n", legacy.Safe(file))
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
		planText(w, p, nil)
		fmt.Fprintf(w, "Converted files in %s\n", legacy.Safe(c.Out))
	})
}

// LegacyApplyCmd is `flm migrate legacy apply`.
type LegacyApplyCmd struct {
	From          string `required:"" placeholder:"FILE" help:"The prototype's flm.db, or the folder holding it."`
	Confirm       bool   `help:"Really change config.db and security.db (they are backed up first)."`
	ReplacePolicy bool   `help:"Replace the install's own security policy (not the default one) with the legacy mapping; without it apply refuses."`
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

// legacyCrashAt is a context key for tests: Run returns right after the
// named step ("journal", "security", "config") as a kill would, leaving
// the journal and no rollback.
type legacyCrashAt struct{}

var errSimulatedCrash = errors.New("simulated crash (test)")

func (a *App) crashAt(step string) bool {
	at, _ := a.ctx.Value(legacyCrashAt{}).(string)
	return at == step
}

// Run imports the plan. It only adds: keys, engines and profiles that are
// not there, settings the install has not set; the policy is replaced only
// when the install's is the default one, or with --replace-policy.
//
// Order, for kill -9 at any moment: backups of both DBs (for the manual
// procedure) → journal naming exactly what is written (synced) →
// security.db (one transaction) → config.db (one transaction) → checks →
// applied.json (atomic rename: the commit point) → journal removed. An
// apply interrupted before its commit point is undone from the journal by
// the next command (any that opens a DB); after it, only the journal is
// removed.
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
	log.printf("apply from %s (sha256 %s, wal %v): %d keys, %d profiles, %d engines, %d settings, %d dropped", legacy.Safe(p.Source.Path), p.Source.SHA256, p.Source.WAL, len(p.Keys), len(p.Profiles), len(p.Engines), len(p.Settings), len(p.Dropped))
	// One apply at a time, and no recovery (flm check, any command that
	// opens the DBs) undoes an apply that is still running.
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
			fmt.Fprintf(w, "%s was already applied at %s; nothing changed.\n", legacy.Safe(p.Source.Path), stamp(prev.AppliedAt))
		})
	}
	keys := store.APIKeys{DB: sec}
	for _, k := range p.Keys {
		_, errHash := keys.ByHash(a.ctx, k.Hash)
		_, errID := keys.Get(a.ctx, k.ID)
		if errHash == nil || errID == nil {
			return flmerr.New(flmerr.InvalidArgument, "api key %s of the legacy file is already in security.db (imported from another copy of this flm.db?); nothing was changed", legacy.Safe(k.LegacyID))
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
	diff, err := a.diffInstall(cfg, sec, p, c.ReplacePolicy)
	if err != nil {
		return err
	}
	if len(diff.conflicts) > 0 {
		return flmerr.New(flmerr.InvalidArgument, "proxy profile(s) %s already exist with another configuration (an earlier migration?); apply does not overwrite them: remove them or migrate a copy without those APIs; nothing was changed", strings.Join(diff.conflicts, ", "))
	}
	if diff.PolicyChange == policyNeedsReplace {
		return flmerr.New(flmerr.InvalidArgument, "security.db has its own security policy %s; the legacy mapping is %s. apply would replace yours: add --replace-policy to replace it (keep the current one above to set it again with `flm security policy set`), or leave it and do not migrate; nothing was changed",
			legacy.Safe(diff.currentDoc), legacy.Safe(string(p.Policy)))
	}

	// What the apply writes, exactly: the journal's undo names it.
	now := time.Now().UTC()
	simp := store.SecurityImport{Keys: p.Records()}
	undoSec := &store.SecurityUndo{KeyIDs: []string{}}
	for _, k := range p.Keys {
		undoSec.KeyIDs = append(undoSec.KeyIDs, k.ID)
	}
	if diff.PolicyChange != policyUnchanged {
		simp.PolicyJSON, simp.PolicyBefore = p.Policy, &diff.currentDoc
		undoSec.Policy = &store.PolicySwap{Before: diff.currentDoc, After: string(p.Policy)}
	}
	var imp store.ConfigImport
	undoCfg := &store.ConfigUndo{Settings: diff.SettingsAdded, Profiles: map[string]string{}, Endpoints: []engine.Endpoint{}}
	for _, k := range slices.Sorted(mapKeysOf(diff.SettingsAdded)) {
		imp.Settings = append(imp.Settings, settings.Value{Key: k, Value: diff.SettingsAdded[k]})
	}
	for _, e := range p.Engines {
		ep := engine.Endpoint{ID: e.ID, Kind: engine.Kind(e.Kind), BaseURL: e.BaseURL, UserAdded: true}
		imp.Endpoints = append(imp.Endpoints, ep)
		undoCfg.Endpoints = append(undoCfg.Endpoints, ep)
	}
	for _, pr := range diff.profiles {
		imp.Profiles = append(imp.Profiles, store.Profile{ID: pr.ID, Config: pr.Config})
		if undoCfg.Profiles[pr.ID], err = store.ProfileJSON(pr.Config); err != nil {
			return flmerr.Wrap(err, flmerr.Internal, "encode proxy profile %s", pr.ID)
		}
	}

	backups, err := store.SnapshotUnit(a.ctx, filepath.Join(dir, "backups"), now, store.SnapshotOptions{Auto: true, NoPrune: true}, cfg, sec)
	if err != nil {
		return flmerr.Wrap(err, flmerr.MigrationFailed, "back up config.db and security.db (nothing was changed)")
	}
	j := journal{Version: journalVersion, ApplyID: newRequestID(), StartedAt: now, Legacy: p.Source.Path, Security: undoSec, Config: undoCfg}
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
	keychain.SyncDir(mdir)
	if a.crashAt("journal") {
		return errSimulatedCrash
	}
	fail := func(cause error) error {
		log.printf("apply failed: %v; undoing", cause)
		res, rerr := a.rollbackLegacy(j)
		if rerr != nil {
			log.printf("UNDO FAILED: %v", rerr)
			return flmerr.Wrap(cause, flmerr.MigrationFailed, "apply failed and undoing it failed too (%v): the next flm command retries; if it keeps failing, restore %s by hand (docs/guides/MIGRATION_GUIDE.md)", rerr, strings.Join(j.Backups, " and "))
		}
		log.printf("undone: %s", undoSummary(res))
		return flmerr.Wrap(cause, flmerr.MigrationFailed, "apply failed; what it had written was removed (%s)", undoSummary(res))
	}
	if err := sec.ImportSecurity(a.ctx, simp, now); err != nil {
		return fail(err)
	}
	log.printf("security.db written: %d keys, policy %s", len(p.Keys), diff.PolicyChange)
	if a.crashAt("security") {
		return errSimulatedCrash
	}
	if err := cfg.ImportConfig(a.ctx, imp, now); err != nil {
		return fail(err)
	}
	log.printf("config.db written: %d settings (%d kept), %d engines, %d profiles", len(imp.Settings), len(diff.SettingsKept), len(imp.Endpoints), len(imp.Profiles))
	if a.crashAt("config") {
		return errSimulatedCrash
	}
	rec := appliedRec{ApplyID: j.ApplyID, AppliedAt: now, Legacy: p.Source.Path, LegacySHA: p.Source.SHA256, Policy: p.Policy, Settings: diff.SettingsAdded, BackupUnit: j.Backups, SettingsKept: diff.SettingsKept}
	if diff.PolicyChange == policyReplaces || diff.PolicyChange == policyReplacesDefault {
		rec.PreviousPolicy = diff.CurrentPolicy
	}
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
	return a.print(map[string]any{"applied": true, "summary": p.Summary, "backups": j.Backups, "checks": ck.results, "warnings_legacy": p.Warnings, "install": diff, "proxies": proxies}, func(w io.Writer) {
		fmt.Fprintf(w, "Imported %d API key(s), %d proxy profile(s), %d engine(s), %d setting(s) from %s.\nBackups: %s\n",
			len(p.Keys), len(imp.Profiles), len(p.Engines), len(imp.Settings), legacy.Safe(p.Source.Path), strings.Join(j.Backups, ", "))
		fmt.Fprintf(w, "Policy (new): %s\n", legacy.Safe(string(p.Policy)))
		diffText(w, diff)
		for _, x := range p.Warnings {
			fmt.Fprintf(w, "warning: %s\n", legacy.Safe(x))
		}
		proxiesText(w, proxies)
	})
}

func undoSummary(r undoResult) string {
	var parts []string
	if len(r.Removed) > 0 {
		parts = append(parts, "removed "+strings.Join(r.Removed, ", "))
	} else {
		parts = append(parts, "nothing of it was stored")
	}
	if len(r.Left) > 0 {
		parts = append(parts, "left as changed since by another process: "+strings.Join(r.Left, "; "))
	}
	return strings.Join(parts, "; ")
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
// (applied.json carries its id) → the journal is removed; otherwise what
// the journal names is undone (rollbackLegacy). Backups are never
// restored automatically: they would also undo every write made since by
// other processes.
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
	if err := json.Unmarshal(b, &j); err != nil {
		// Torn before any write (the journal is written atomically before
		// the first one): nothing to undo.
		_ = os.Remove(jp)
		return nil
	}
	if rec, err := readApplied(dir); err == nil && rec.ApplyID == j.ApplyID {
		_ = os.Remove(jp)
		return nil
	}
	if j.Version < journalVersion || j.Security == nil || j.Config == nil {
		// A journal that names only backups (an older flm): restoring
		// them would undo every write since, so nothing is restored; the
		// journal is set aside for the manual procedure.
		if len(j.Backups) == 0 {
			_ = os.Remove(jp)
			return nil
		}
		aside := filepath.Join(dir, migrationsDir, "apply-"+time.Now().UTC().Format("20060102T150405.000Z")+".interrupted.json")
		if err := os.Rename(jp, aside); err != nil {
			return flmerr.Wrap(err, flmerr.IOError, "set aside %s", jp)
		}
		keychain.SyncDir(filepath.Dir(jp))
		a.warn("LEGACY_APPLY_NOT_UNDONE", fmt.Sprintf("an interrupted `flm migrate legacy apply` (started %s) left a journal without undo information (%s): nothing was restored automatically. If `flm check` shows legacy keys or profiles you do not want, follow docs/guides/MIGRATION_GUIDE.md (backups: %s)",
			j.StartedAt.Format(time.RFC3339), aside, strings.Join(j.Backups, ", ")))
		return nil
	}
	res, err := a.rollbackLegacy(j)
	if err != nil {
		return flmerr.Wrap(err, flmerr.MigrationFailed, "an interrupted `flm migrate legacy apply` could not be undone (the next command retries): if it keeps failing, see docs/guides/MIGRATION_GUIDE.md (backups: %s)", strings.Join(j.Backups, " and "))
	}
	a.warn("LEGACY_APPLY_ROLLED_BACK", fmt.Sprintf("an interrupted `flm migrate legacy apply` (started %s) was undone: %s", j.StartedAt.Format(time.RFC3339), undoSummary(res)))
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

// undoResult is what rollbackLegacy removed and what it left.
type undoResult struct{ Removed, Left []string }

// rollbackLegacy undoes what the journal names — each DB in one
// transaction, each row only while it still holds what the apply wrote —
// then removes the journal. Idempotent: a kill during it is finished by
// the next recovery.
func (a *App) rollbackLegacy(j journal) (undoResult, error) {
	var out undoResult
	dir, err := a.DataDir()
	if err != nil {
		return out, err
	}
	if j.Security == nil || j.Config == nil {
		return out, flmerr.New(flmerr.Internal, "the journal names nothing to undo")
	}
	sec, err := a.DB(store.Security)
	if err != nil {
		return out, err
	}
	rs, err := sec.UndoSecurityImport(a.ctx, *j.Security)
	if err != nil {
		return out, err
	}
	cfg, err := a.DB(store.Config)
	if err != nil {
		return out, err
	}
	rc, err := cfg.UndoConfigImport(a.ctx, *j.Config)
	if err != nil {
		return out, err
	}
	out.Removed = append(rs.Removed, rc.Removed...)
	out.Left = append(rs.Left, rc.Left...)
	jp := filepath.Join(dir, migrationsDir, applyJournal)
	if err := os.Remove(jp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return out, err
	}
	keychain.SyncDir(filepath.Dir(jp))
	return out, nil
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
