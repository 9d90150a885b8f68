package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unjuno/flm/cli/internal/store"
)

// withFileKey prefixes args with --key-source file: hermetic, whatever
// keychain the machine running the tests has.
func withFileKey(args ...string) []string {
	return append([]string{"--key-source", "file"}, args...)
}

type backupList struct {
	Backups []store.Backup `json:"backups"`
}

// unitsOf groups a backup list by unit.
func unitsOf(bs []store.Backup) map[string][]store.Kind {
	out := map[string][]store.Kind{}
	for _, b := range bs {
		out[b.Unit] = append(out[b.Unit], b.Kind)
	}
	return out
}

// Review finding 3: `backup create` with security.db's key missing fails
// with DB_KEY_UNAVAILABLE and writes nothing: no config-only snapshot, and
// no older snapshot pruned, however often it is retried.
func TestBackupCreateFailureWritesNothing(t *testing.T) {
	dir := t.TempDir()
	ok(t, dir, withFileKey("api-keys", "create", "--label", "a")...)
	for range 3 {
		ok(t, dir, withFileKey("security", "backup", "create")...)
	}
	bdir := filepath.Join(dir, "backups")
	before := dirSums(t, bdir)
	keyFile := filepath.Join(dir, "security.key")
	aside := filepath.Join(t.TempDir(), "security.key")
	if err := os.Rename(keyFile, aside); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		fails(t, dir, 1, "DB_KEY_UNAVAILABLE", withFileKey("security", "backup", "create")...)
	}
	sameSums(t, before, dirSums(t, bdir))
	if err := os.Rename(aside, keyFile); err != nil {
		t.Fatal(err)
	}
	var list backupList
	ok(t, dir, withFileKey("security", "backup", "list")...).data(t, &list)
	for u, kinds := range unitsOf(list.Backups) {
		if len(kinds) != 2 {
			t.Errorf("unit %s is %v; want config and security", u, kinds)
		}
	}
}

// Review finding 4: rotations add automatic, security-only snapshots; they
// must not push the user's backups out or split their pairs, and trying
// the user's backups one after another must not delete the next one to
// try.
func TestBackupPairsSurviveRotationsAndRestores(t *testing.T) {
	dir := t.TempDir()
	ok(t, dir, withFileKey("api-keys", "create", "--label", "a")...)
	var manual []string
	for range 3 {
		var made struct {
			Backups []store.Backup `json:"backups"`
		}
		ok(t, dir, withFileKey("security", "backup", "create")...).data(t, &made)
		manual = append(manual, made.Backups[0].Unit)
	}
	for range 4 {
		ok(t, dir, withFileKey("security", "rotate-db-key")...)
	}
	requirePairs := func(when string) []store.Backup {
		t.Helper()
		var list backupList
		ok(t, dir, withFileKey("security", "backup", "list")...).data(t, &list)
		units := unitsOf(list.Backups)
		for _, u := range manual {
			if len(units[u]) != 2 {
				t.Fatalf("%s: manual unit %s is %v; want config and security (list: %v)", when, u, units[u], units)
			}
		}
		for _, b := range list.Backups {
			if b.KeyMismatch {
				t.Fatalf("%s: %s is under another key", when, b.Path)
			}
		}
		return list.Backups
	}
	list := requirePairs("after 4 rotations")
	auto := 0
	for _, b := range list {
		if b.Auto {
			auto++
		}
	}
	if auto != store.KeepAutoBackups {
		t.Fatalf("%d automatic snapshots kept; want %d", auto, store.KeepAutoBackups)
	}
	// Try each backup in turn, newest first.
	for i := len(manual) - 1; i >= 0; i-- {
		var file string
		for _, b := range list {
			if b.Unit == manual[i] && b.Kind == store.Security {
				file = b.Path
			}
		}
		ok(t, dir, withFileKey("security", "backup", "restore", "--file", file)...)
		requirePairs("after restoring " + manual[i])
	}
}

// Review finding 5: a unit whose config snapshot is gone (pruned, moved)
// restores only security.db, and says so in the output.
func TestBackupRestoreOfAHalfUnitWarns(t *testing.T) {
	dir := t.TempDir()
	a := createKey(t, dir, "kept")
	var made struct {
		Backups []store.Backup `json:"backups"`
	}
	ok(t, dir, "security", "backup", "create").data(t, &made)
	cfgSnap, secSnap := made.Backups[0], made.Backups[1]
	if cfgSnap.Kind != store.Config || secSnap.Kind != store.Security {
		t.Fatalf("backups = %+v", made.Backups)
	}
	if err := os.Remove(cfgSnap.Path); err != nil {
		t.Fatal(err)
	}
	createKey(t, dir, "later")
	ok(t, dir, "config", "set", "proxy.port", "9300")

	r := ok(t, dir, "security", "backup", "restore", "--file", secSnap.Path)
	var res struct {
		Restored    []restored `json:"restored"`
		NotRestored []string   `json:"not_restored"`
	}
	r.data(t, &res)
	if len(res.Restored) != 1 || res.Restored[0].Kind != store.Security || len(res.NotRestored) != 1 || res.NotRestored[0] != filepath.Join(dir, "config.db") {
		t.Fatalf("restore of a half unit = %+v", res)
	}
	found := false
	for _, w := range warningsOf(t, r.stdout) {
		found = found || (w.Code == "BACKUP_PARTIAL_UNIT" && strings.Contains(w.Message, "only "+filepath.Join(dir, "security.db")+" was restored"))
	}
	if !found {
		t.Fatalf("no warning that only security.db was restored: %s", r.stdout)
	}
	if tr := ok(t, dir, "--format", "text", "security", "backup", "restore", "--file", secSnap.Path); !strings.Contains(tr.stdout, "warning: ") || !strings.Contains(tr.stdout, "Not restored") {
		t.Fatalf("text output: %s", tr.stdout)
	}
	var list keyList
	ok(t, dir, "api-keys", "list").data(t, &list)
	if len(list.APIKeys) != 1 || list.APIKeys[0].ID != a.ID {
		t.Fatalf("keys after restore: %+v", list)
	}
	if r := ok(t, dir, "config", "get", "proxy.port"); !strings.Contains(r.stdout, "9300") {
		t.Fatalf("config.db was touched: %s", r.stdout)
	}
}

type checkReport struct {
	Status string        `json:"status"`
	Checks []checkResult `json:"checks"`
}

func (c checkReport) find(name string) (checkResult, bool) {
	for _, r := range c.Checks {
		if r.Name == name {
			return r, true
		}
	}
	return checkResult{}, false
}

// Review finding 7: with security.db damaged, `flm check` still tells
// healthy backups from backups under another key, and still reports the
// encryption of a file that opens.
func TestCheckOnADamagedSecurityDB(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		page  int64 // 4 KiB page to damage
		opens bool
	}{
		{"a data page damaged: opens, fails its integrity check", 20, true},
		{"the first page damaged: does not open", 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ok(t, dir, withFileKey("api-keys", "create", "--label", "a")...)
			d, err := store.Open(ctx, dir, store.Security, store.WithKeys(store.KeyConfig{Mode: store.KeyFile}))
			if err != nil {
				t.Fatal(err)
			}
			// Enough audit rows for some 40 pages.
			err = d.ExecForTest(`WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 400)
				INSERT INTO audit_logs (event_type, created_at, details) SELECT 'test', 0, hex(randomblob(200)) FROM n`)
			d.Close()
			if err != nil {
				t.Fatal(err)
			}
			ok(t, dir, withFileKey("security", "backup", "create")...)
			path := filepath.Join(dir, "security.db")
			b, _ := os.ReadFile(path)
			if int64(len(b)) < (c.page+1)*4096 {
				t.Fatalf("security.db has %d bytes", len(b))
			}
			for i := c.page*4096 + 64; i < c.page*4096+1024; i++ {
				b[i] ^= 0x5a
			}
			_ = os.WriteFile(path, b, 0o600)

			r := flm(t, dir, withFileKey("check")...)
			var rep checkReport
			r.data(t, &rep)
			if r.code != 1 || rep.Status != "error" {
				t.Fatalf("check on a damaged security.db: exit %d %+v", r.code, rep)
			}
			backups := 0
			for _, res := range rep.Checks {
				if strings.HasPrefix(res.Name, "backups.security-") {
					backups++
					if res.Status != "ok" {
						t.Errorf("%s: %s %s; want a healthy backup", res.Name, res.Status, res.Message)
					}
				}
			}
			if backups != 1 {
				t.Fatalf("%d security backup checks: %+v", backups, rep.Checks)
			}
			enc, found := rep.find("security_db.encryption")
			if c.opens && (!found || !strings.Contains(enc.Message, "encrypted (adiantum")) {
				t.Fatalf("no encryption line for a file that opens: %+v", rep.Checks)
			}
			if integ, _ := rep.find("security_db.integrity"); c.opens && integ.Status != "error" {
				t.Fatalf("integrity = %+v", integ)
			}
		})
	}
}
