package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/settings"
)

// units groups the snapshots in dir by unit: unit -> kinds present.
func units(t *testing.T, dir string, keys ...Key) map[string][]Kind {
	t.Helper()
	list, err := ListBackups(context.Background(), dir, keys...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]Kind{}
	for _, b := range list {
		out[b.Unit] = append(out[b.Unit], b.Kind)
	}
	return out
}

// Review finding 3: a unit whose second snapshot fails leaves nothing
// behind and prunes nothing; retrying does not eat older backups.
func TestSnapshotUnitIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bdir := filepath.Join(dir, "backups")
	cfg := open(t, dir, Config)
	sec := open(t, dir, Security)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for i := range KeepBackups {
		if _, err := SnapshotUnit(ctx, bdir, t0.Add(time.Duration(i)*time.Minute), SnapshotOptions{}, cfg, sec); err != nil {
			t.Fatal(err)
		}
	}
	before := checksums(t, bdir)
	broken, err := Open(ctx, dir, Security, WithKeys(KeyConfig{Mode: KeyFile}))
	if err != nil {
		t.Fatal(err)
	}
	_ = broken.Close() // its snapshot fails, after config.db's was written
	for i := range 3 {
		if _, err := SnapshotUnit(ctx, bdir, t0.Add(time.Hour+time.Duration(i)*time.Minute), SnapshotOptions{}, cfg, broken); err == nil {
			t.Fatal("a snapshot of a closed database succeeded")
		}
	}
	sameChecksums(t, before, checksums(t, bdir))
}

// Review finding 4: automatic snapshots (one database each) never push a
// user's backups out, and pruning removes units whole.
func TestPruneKeepsUnitsWhole(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bdir := filepath.Join(dir, "backups")
	cfg := open(t, dir, Config)
	sec := open(t, dir, Security)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	var manual []string
	for i := range KeepBackups + 1 {
		bs, err := SnapshotUnit(ctx, bdir, t0.Add(time.Duration(i)*time.Minute), SnapshotOptions{}, cfg, sec)
		if err != nil {
			t.Fatal(err)
		}
		manual = append(manual, bs[0].Unit)
	}
	// Rotations, imports and migrations: security-only automatic units,
	// all newer than the user's backups.
	for i := range 5 {
		if _, err := sec.autoSnapshot(ctx, bdir, t0.Add(time.Hour+time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	got := units(t, bdir, sec.Key())
	for i, u := range manual {
		kinds, ok := got[u]
		switch {
		case i == 0 && ok:
			t.Errorf("the oldest manual unit %s was kept beyond the %d kept", u, KeepBackups)
		case i > 0 && len(kinds) != 2:
			t.Errorf("manual unit %s is %v; want config and security", u, kinds)
		}
	}
	auto := 0
	for u, kinds := range got {
		if strings.Contains(u, "-auto") {
			auto++
			if len(kinds) != 1 || kinds[0] != Security {
				t.Errorf("automatic unit %s = %v", u, kinds)
			}
		}
	}
	if auto != KeepAutoBackups || len(got) != KeepBackups+KeepAutoBackups {
		t.Fatalf("units after pruning: %v", got)
	}
	// A unit with a snapshot under another key is neither pruned nor
	// counted: it can only come back with its key.
	foreign := t.TempDir()
	fd := open(t, foreign, Security)
	fb, err := fd.Snapshot(ctx, filepath.Join(foreign, "b"), t0.Add(-time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(fb.Path)
	kept := filepath.Join(bdir, filepath.Base(fb.Path))
	_ = os.WriteFile(kept, raw, 0o600)
	if _, err := SnapshotUnit(ctx, bdir, t0.Add(2*time.Hour), SnapshotOptions{}, cfg, sec); err != nil {
		t.Fatal(err)
	}
	if !fileExists(kept) {
		t.Fatal("a snapshot under another key was pruned")
	}
}

// mutate changes both databases after a backup: a new API key and a
// setting.
func mutate(t *testing.T, cfg, sec *DB) {
	t.Helper()
	ctx := context.Background()
	if _, err := (&apikey.Service{Store: APIKeys{sec}}).Create(ctx, "after the backup"); err != nil {
		t.Fatal(err)
	}
	if err := (Settings{cfg}).Set(ctx, settings.Value{Key: "proxy.port", Value: "9999", UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func keyCount(t *testing.T, sec *DB) int {
	t.Helper()
	recs, err := (APIKeys{sec}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// Review finding 5: config.db held by another process (BEGIN EXCLUSIVE in
// a sqlite3 shell, say). Restoring a unit must not replace security.db and
// then fail on config.db: nothing is replaced, and the error says so.
func TestRestoreUnitRefusesBeforeReplacingAnything(t *testing.T) {
	defer func(d time.Duration) { busyTimeout = d }(busyTimeout)
	busyTimeout = 300 * time.Millisecond
	ctx := context.Background()
	dir := t.TempDir()
	bdir := filepath.Join(dir, "backups")
	cfg := open(t, dir, Config)
	sec := open(t, dir, Security)
	unit, err := SnapshotUnit(ctx, bdir, time.Now(), SnapshotOptions{}, cfg, sec)
	if err != nil {
		t.Fatal(err)
	}
	mutate(t, cfg, sec)
	holder, err := sqlite3.Open(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := holder.Exec("BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	beforeBackups := checksums(t, bdir)
	_, err = RestoreUnit(ctx, bdir, time.Now(), unit, map[Kind]*DB{Config: cfg, Security: sec})
	if !flmerr.Is(err, flmerr.DBError) || !strings.Contains(err.Error(), cfg.Path) || !strings.Contains(err.Error(), "nothing was restored") {
		t.Fatalf("restore with config.db locked = %v", err)
	}
	if n := keyCount(t, sec); n != 1 {
		t.Fatalf("security.db was replaced (%d keys) although config.db could not be", n)
	}
	sameChecksums(t, beforeBackups, checksums(t, bdir))
	_ = holder.Exec("ROLLBACK")
	// Once config.db is free, the same restore works, both halves.
	out, err := RestoreUnit(ctx, bdir, time.Now(), unit, map[Kind]*DB{Config: cfg, Security: sec})
	if err != nil || len(out) != 2 || out[0].Kind != Security {
		t.Fatalf("restore = %+v, %v", out, err)
	}
	if n := keyCount(t, sec); n != 0 {
		t.Fatalf("%d keys after restore", n)
	}
	if _, err := (Settings{cfg}).Get(ctx, "proxy.port"); !errors.Is(err, settings.ErrNotFound) {
		t.Fatalf("config.db after restore: %v", err)
	}
}

// When the second half fails after the first was restored (the config
// snapshot vanished between the check and the restore), the first is put
// back, and the error says where the previous state is.
func TestRestoreUnitRollsBackAHalfFailure(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bdir := filepath.Join(dir, "backups")
	cfg := open(t, dir, Config)
	sec := open(t, dir, Security)
	unit, err := SnapshotUnit(ctx, bdir, time.Now(), SnapshotOptions{}, cfg, sec)
	if err != nil {
		t.Fatal(err)
	}
	mutate(t, cfg, sec)
	if err := os.Remove(unit[0].Path); err != nil { // the config snapshot
		t.Fatal(err)
	}
	_, err = RestoreUnit(ctx, bdir, time.Now(), unit, map[Kind]*DB{Config: cfg, Security: sec})
	if err == nil || !strings.Contains(err.Error(), "was put back as it was") || !strings.Contains(err.Error(), "-auto.db") {
		t.Fatalf("restore with a vanished config snapshot = %v", err)
	}
	if n := keyCount(t, sec); n != 1 {
		t.Fatalf("security.db holds %d keys; the restored half was not put back", n)
	}
	if v, err := (Settings{cfg}).Get(ctx, "proxy.port"); err != nil || v.Value != "9999" {
		t.Fatalf("config.db changed: %+v %v", v, err)
	}
}
