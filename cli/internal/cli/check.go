package cli

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/unjuno/flm/cli/internal/datadir"
	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/policy"
)

// CheckCmd is `flm check`.
type CheckCmd struct {
	Verbose bool `help:"Also list checks that passed in text output."`
}

type checkResult struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

type checker struct{ results []checkResult }

func (c *checker) add(name, status, format string, args ...any) {
	c.results = append(c.results, checkResult{Name: name, Status: status, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) status() string {
	s := "ok"
	for _, r := range c.results {
		switch r.Status {
		case "error":
			return "error"
		case "warning":
			s = "warning"
		}
	}
	return s
}

// Run validates files, permissions, schema versions, the policy and the key
// hashes. It prints its report on stdout; an "error" status exits 1.
func (c CheckCmd) Run(a *App) error {
	var ck checker
	dir, err := a.DataDir()
	if err != nil {
		return err
	}
	checkPerm(&ck, "data_dir", dir, 0o700)
	// An interrupted `flm migrate legacy apply` is finished or rolled back
	// before anything is judged.
	if err := a.recoverLegacyApply(); err != nil {
		ck.add("legacy.apply", "error", "%v", err)
	}
	for _, s := range datadir.Subdirs {
		checkPerm(&ck, "data_dir."+s, filepath.Join(dir, s), 0o700)
	}
	var keys []store.Key
	for _, k := range []store.Kind{store.Config, store.Security} {
		d, healthy := checkDB(a.ctx, &ck, a, k)
		if k != store.Security {
			continue
		}
		if d == nil {
			// security.db does not open (damaged, wrong key): its backups
			// are still judged with the key the key source holds, so that
			// healthy ones are not reported as made under another key.
			if key, err := store.CurrentKey(a.ctx, dir, a.keyConfig(dir)); err == nil {
				keys = append(keys, key)
			}
			continue
		}
		// A file that fails its integrity check is still encrypted under
		// its key, and its backups under the same key are fine.
		checkEncryption(&ck, d, dir)
		if key := d.Key(); !key.IsZero() {
			keys = append(keys, key)
		}
		if healthy {
			checkSecurity(a.ctx, &ck, d)
		}
	}
	checkBackups(a.ctx, &ck, filepath.Join(dir, "backups"), keys)
	checkLegacyApplied(a, &ck, dir)

	ck.results = append(ck.results, egressCheckResult(a.ctx, a))
	status := ck.status()
	err = a.print(map[string]any{"status": status, "checks": ck.results}, func(w io.Writer) {
		t := table(w, "CHECK", "STATUS", "MESSAGE")
		for _, r := range ck.results {
			if c.Verbose || r.Status != "ok" {
				t.row(r.Name, r.Status, r.Message)
			}
		}
		t.flush()
		fmt.Fprintf(w, "status: %s (%d checks)\n", status, len(ck.results))
	})
	if err != nil {
		return err
	}
	if status == "error" {
		return reported(1)
	}
	return nil
}

func checkPerm(ck *checker, name, path string, want fs.FileMode) {
	st, err := os.Stat(path)
	if err != nil {
		ck.add(name, "error", "%s: %v", path, err)
		return
	}
	if runtime.GOOS == "windows" {
		ck.add(name, "ok", "%s exists", path)
		return
	}
	if got := st.Mode().Perm(); got&^want != 0 {
		ck.add(name, "warning", "%s has mode %04o; want %04o (chmod %04o %s)", path, got, want, want, path)
		return
	}
	ck.add(name, "ok", "%s has mode %04o", path, st.Mode().Perm())
}

// checkDB opens and checks one database. It returns the open database (nil
// when it does not open) and whether it passed its integrity check.
func checkDB(ctx context.Context, ck *checker, a *App, k store.Kind) (*store.DB, bool) {
	name := string(k) + "_db"
	d, err := a.DB(k)
	if err != nil {
		ck.add(name, "error", "%v", err)
		return nil, false
	}
	checkPerm(ck, name+".permissions", d.Path, 0o600)
	if err := d.QuickCheck(ctx); err != nil {
		ck.add(name+".integrity", "error", "%v", err)
		return d, false
	}
	ck.add(name+".integrity", "ok", "%s passed its integrity check", d.Path)
	if ro := d.ReadOnly(); ro != nil {
		ck.add(name+".schema", "error", "%v", ro)
		return d, true
	}
	ck.add(name+".schema", "ok", "schema version %d (latest %d)", d.Version(), store.SchemaVersion(k))
	return d, true
}

func checkSecurity(ctx context.Context, ck *checker, d *store.DB) {
	svc := &policy.Service{Store: store.Policy{DB: d}}
	st, err := svc.Show(ctx)
	switch {
	case err != nil:
		ck.add("policy", "error", "the stored policy does not parse: %v", err)
	case len(st.Warnings) > 0:
		for _, w := range st.Warnings {
			ck.add("policy", "warning", "%s", w)
		}
	default:
		ck.add("policy", "ok", "the stored policy is valid (last set %s)", st.UpdatedAt.UTC().Format(time.RFC3339))
	}
	bad, err := d.Count(ctx, "api_keys", "hash IS NULL OR length(hash) != 64 OR hash GLOB '*[^0-9a-f]*'")
	switch {
	case err != nil:
		ck.add("api_keys", "error", "%v", err)
	case bad > 0:
		ck.add("api_keys", "error", "%d api key(s) have an empty or malformed hash; revoke them and create new ones", bad)
	default:
		active, _ := d.Count(ctx, "api_keys", "revoked_at IS NULL")
		ck.add("api_keys", "ok", "every key hash is well formed (%d active)", active)
	}
}

// checkEncryption reports how security.db is protected: cipher, key
// source, and whether the key sits in a file (a warning, like the one every
// command prints).
func checkEncryption(ck *checker, d *store.DB, dir string) {
	e := d.Encryption()
	if !e.Encrypted {
		ck.add("security_db.encryption", "error", "%s is not encrypted", d.Path)
		return
	}
	src := e.KeySource
	msg := fmt.Sprintf("security.db is encrypted (%s, key id %s); key source: %s", e.Cipher, e.KeyID, src.Name)
	switch {
	case src.Warning != "":
		ck.add("security_db.encryption", "warning", "%s. %s", msg, src.Warning)
	case src.Kind == store.KeyEnv:
		ck.add("security_db.encryption", "ok", "%s (the key is in this process's environment: keep it out of shell history, logs and images)", msg)
	default:
		ck.add("security_db.encryption", "ok", "%s", msg)
	}
	if kf := filepath.Join(dir, store.KeyFileName); src.Kind == store.KeyFile {
		checkPerm(ck, "security_db.key_file", kf, 0o600)
	}
	// Keys an import replaced, kept in clear for a security.db moved away.
	replaced, _ := filepath.Glob(filepath.Join(dir, store.KeyFileName+".replaced-*"))
	for _, p := range replaced {
		ck.add("security_db."+filepath.Base(p), "warning", "%s holds a replaced security.db key in clear (written by import-db-key): anyone who copies the data dir can read what it opens. Move it offline, or delete it once the file it opens is gone", p)
	}
}

func checkBackups(ctx context.Context, ck *checker, dir string, keys []store.Key) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		ck.add("backups", "error", "%v", flmerr.Wrap(err, flmerr.IOError, "read backups"))
		return
	}
	list, _ := store.ListBackups(ctx, dir, keys...)
	valid := map[string]bool{}
	for _, b := range list {
		valid[filepath.Base(b.Path)] = true
		name := "backups." + filepath.Base(b.Path)
		switch {
		case b.KeyMismatch:
			ck.add(name, "warning", "%s was made under another key (or is not a backup): import its key with `flm security import-db-key --file <key file>` to restore it", b.Path)
			continue
		case b.Kind == store.Security && !b.Encrypted:
			ck.add(name, "warning", "%s is a security snapshot that is not encrypted (from an older flm); it holds key hashes and the policy in clear: delete it, or restore it and take a new backup", b.Path)
		}
		checkPerm(ck, name, b.Path, 0o600)
	}
	for _, e := range ents {
		if !e.IsDir() && filepath.Ext(e.Name()) == ".db" && !valid[e.Name()] {
			ck.add("backups."+e.Name(), "warning", "%s is not a readable FLM backup", filepath.Join(dir, e.Name()))
		}
	}
	ck.add("backups", "ok", "%d snapshot(s) in %s", len(list), dir)
}

// checkLegacyApplied compares, after `flm migrate legacy apply`, the
// stored keys, policy and proxy profiles with the legacy file recorded at
// apply time. A legacy file that is gone (or changed) is a warning, and
// the comparison then uses what the apply recorded.
func checkLegacyApplied(a *App, ck *checker, dir string) {
	rec, err := readApplied(dir)
	if err != nil {
		return
	}
	cfg, err := a.DB(store.Config)
	if err != nil {
		return
	}
	sec, err := a.DB(store.Security)
	if err != nil {
		return
	}
	p, err := a.legacyPlan(rec.Legacy)
	switch {
	case err != nil:
		ck.add("legacy.source", "warning", "the legacy file %s recorded at apply time cannot be read (%v): comparing with what the apply recorded", rec.Legacy, err)
		p = nil
	case p.Source.SHA256 != rec.LegacySHA:
		ck.add("legacy.source", "warning", "%s changed since it was applied on %s: comparing with what the apply recorded", rec.Legacy, stamp(rec.AppliedAt))
		p = nil
	default:
		ck.add("legacy.source", "ok", "%s, applied on %s", rec.Legacy, stamp(rec.AppliedAt))
	}
	compareLegacy(a, ck, cfg, sec, rec, p)
}
