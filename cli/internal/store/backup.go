package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"
	"gorm.io/gorm"

	"github.com/unjuno/flm/cli/internal/keychain"
	"github.com/unjuno/flm/core/flmerr"
)

// Retention, counted in units (the snapshots taken together, one per
// database): the newest KeepBackups units made by `backup create`, and,
// in a budget of their own, the newest KeepAutoBackups units flm took by
// itself (before a migration, a key rotation, a key import or a restore),
// so that automatic snapshots never push a user's backups out.
const (
	KeepBackups     = 3
	KeepAutoBackups = 3
)

// Backup is one snapshot file.
type Backup struct {
	Path          string    `json:"path"`
	Kind          Kind      `json:"kind"`
	CreatedAt     time.Time `json:"created_at"`
	SchemaVersion int       `json:"schema_version"`
	SizeBytes     int64     `json:"size_bytes"`
	// Unit names the backup a file belongs to: config and security
	// snapshots taken together share it and are restored together.
	Unit string `json:"unit"`
	// Auto marks a snapshot flm took by itself, before a migration, key
	// rotation, key import or restore.
	Auto bool `json:"auto"`
	// Encrypted is set for security snapshots (always, since
	// security.db is encrypted); KeyID tells which key opens it.
	Encrypted bool   `json:"encrypted"`
	KeyID     string `json:"key_id,omitempty"`
	// KeyMismatch: a security snapshot that none of the given keys opens
	// (made under another key, or not a snapshot at all). Listed so the
	// user sees it, never pruned (nor is the rest of its unit), never
	// restorable until its key is imported.
	KeyMismatch bool `json:"key_mismatch,omitempty"`

	key Key
}

// Snapshot files are named <kind>-<UTC stamp>[-auto][-n].db; the stamp,
// not the file's mtime (which a copy changes), orders them, and everything
// after the kind names the unit.
const stampLayout = "20060102T150405.000Z"

var backupName = regexp.MustCompile(`^(config|security)-(\d{8}T\d{9}Z(-auto)?(?:-\d+)?)\.db$`)

// stampOf parses the creation time from a snapshot's file name.
func stampOf(name string) (time.Time, bool) {
	m := backupName.FindStringSubmatch(name)
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102T150405.000Z", m[2][:15]+"."+m[2][15:19])
	return t, err == nil
}

// unitOf is the unit a snapshot file belongs to: its stamp (and counter),
// or, for a file not named by flm, its own name.
func unitOf(path string) string {
	if m := backupName.FindStringSubmatch(filepath.Base(path)); m != nil {
		return m[2]
	}
	return filepath.Base(path)
}

// autoName reports whether a snapshot's name marks it as automatic.
func autoName(path string) bool {
	m := backupName.FindStringSubmatch(filepath.Base(path))
	return m != nil && m[3] != ""
}

// Siblings returns the other snapshots of the unit path belongs to (the
// config snapshot of a security snapshot taken by the same `backup create`,
// or the reverse). Files not named by flm have none.
func Siblings(path string) []string {
	m := backupName.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		return nil
	}
	var out []string
	for _, k := range []Kind{Config, Security} {
		if string(k) == m[1] {
			continue
		}
		p := filepath.Join(filepath.Dir(path), string(k)+"-"+m[2]+".db")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			out = append(out, p)
		}
	}
	return out
}

// Snapshot writes a snapshot of d alone as a unit made by the user (as
// `backup create` does for both databases) and prunes; keep, a snapshot
// path or unit name, is never pruned.
func (d *DB) Snapshot(ctx context.Context, dir string, now time.Time, keep string) (Backup, error) {
	var o SnapshotOptions
	if keep != "" {
		o.Keep = []string{unitOf(keep)}
	}
	bs, err := SnapshotUnit(ctx, dir, now, o, d)
	if err != nil {
		return Backup{}, err
	}
	return bs[0], nil
}

// SnapshotOptions adjusts SnapshotUnit.
type SnapshotOptions struct {
	// Auto marks a snapshot flm takes by itself; it counts against
	// KeepAutoBackups, not KeepBackups.
	Auto bool
	// NoPrune removes nothing (the snapshot before a restore: trying
	// backups one after another must not delete the next one to try).
	NoPrune bool
	// Keep names units that pruning leaves alone.
	Keep []string
}

// autoSnapshot is the snapshot flm takes of d by itself before changing it.
func (d *DB) autoSnapshot(ctx context.Context, dir string, now time.Time) (Backup, error) {
	bs, err := SnapshotUnit(ctx, dir, now, SnapshotOptions{Auto: true}, d)
	if err != nil {
		return Backup{}, err
	}
	return bs[0], nil
}

// SnapshotUnit writes a consistent copy of each of dbs (one per kind) into
// dir with VACUUM INTO (never a raw copy of a live file), 0600, all under
// one unit name, then prunes (see KeepBackups). Either every snapshot of
// the unit is written or none is: nothing is pruned unless all of them
// were. A security snapshot is encrypted with security.db's key.
func SnapshotUnit(ctx context.Context, dir string, now time.Time, o SnapshotOptions, dbs ...*DB) ([]Backup, error) {
	if len(dbs) == 0 {
		return nil, flmerr.New(flmerr.Internal, "snapshot of no database")
	}
	seen := map[Kind]bool{}
	for _, d := range dbs {
		if seen[d.Kind] {
			return nil, flmerr.New(flmerr.Internal, "two %s databases in one snapshot unit", d.Kind)
		}
		seen[d.Kind] = true
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, flmerr.Wrap(err, flmerr.IOError, "create backup dir")
	}
	stamp := strings.Replace(now.UTC().Format(stampLayout), ".", "", 1)
	if o.Auto {
		stamp += "-auto"
	}
	// Each copy is written under a temporary name and linked into place
	// whole: a crash never leaves a half-written snapshot that would look
	// like one made under another key.
	tmps := make([]string, 0, len(dbs))
	defer func() {
		for _, t := range tmps {
			_ = os.Remove(t)
		}
	}()
	for _, d := range dbs {
		tmp, err := d.vacuumTo(ctx, dir, stamp)
		if tmp != "" {
			tmps = append(tmps, tmp)
		}
		if err != nil {
			return nil, err
		}
	}
	unit, paths, err := linkUnit(dir, stamp, dbs, tmps)
	if err != nil {
		return nil, err
	}
	keychain.SyncDir(dir)
	out := make([]Backup, 0, len(dbs))
	var keys []Key
	for i, d := range dbs {
		b, err := Inspect(ctx, paths[i], d.keys()...)
		if err != nil {
			for _, p := range paths {
				_ = os.Remove(p)
			}
			return nil, err
		}
		out = append(out, b)
		keys = append(keys, d.keys()...)
	}
	if !o.NoPrune {
		if err := prune(ctx, dir, append(slices.Clone(o.Keep), unit), keys...); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// vacuumTo writes a copy of d to a new temporary file in dir.
func (d *DB) vacuumTo(ctx context.Context, dir, stamp string) (string, error) {
	tmpf, err := os.CreateTemp(dir, "."+string(d.Kind)+"-"+stamp+".tmp-*")
	if err != nil {
		return "", flmerr.Wrap(err, flmerr.IOError, "create backup file")
	}
	tmp := tmpf.Name()
	_ = tmpf.Close() // VACUUM INTO accepts an existing empty file, so it inherits 0600.
	target := tmp
	if !d.key.IsZero() {
		target = encURI(tmp, d.key, false)
	}
	if err := d.gdb.WithContext(ctx).Exec("VACUUM INTO ?", target).Error; err != nil {
		err = scrub(err, d.key)
		if isDiskErr(tmp, err) {
			return tmp, diskFullErr(filepath.Join(dir, string(d.Kind)+"-"+stamp+".db"), err)
		}
		return tmp, dbErr(d.Path, "back up", err)
	}
	if err := syncFile(tmp); err != nil {
		return tmp, flmerr.Wrap(err, flmerr.IOError, "write backup")
	}
	return tmp, nil
}

// linkUnit links each temporary copy to <kind>-<stamp>[-n].db, choosing
// the first n under which no snapshot of any kind exists yet, so that a
// unit never mixes files of two moments. It never replaces a file.
func linkUnit(dir, stamp string, dbs []*DB, tmps []string) (string, []string, error) {
	for i := 0; i <= 100; i++ {
		unit := stamp
		if i > 0 {
			unit = fmt.Sprintf("%s-%d", stamp, i)
		}
		if fileExists(filepath.Join(dir, string(Config)+"-"+unit+".db")) || fileExists(filepath.Join(dir, string(Security)+"-"+unit+".db")) {
			continue
		}
		var paths []string
		var lerr error
		for j, d := range dbs {
			p := filepath.Join(dir, string(d.Kind)+"-"+unit+".db")
			if lerr = os.Link(tmps[j], p); lerr != nil {
				break
			}
			paths = append(paths, p)
		}
		if lerr == nil {
			return unit, paths, nil
		}
		for _, p := range paths {
			_ = os.Remove(p)
		}
		if !errors.Is(lerr, fs.ErrExist) {
			return "", nil, flmerr.Wrap(lerr, flmerr.IOError, "create backup file")
		}
	}
	return "", nil, flmerr.New(flmerr.IOError, "create backup file: too many snapshots named %s in %s", stamp, dir)
}

// keys is what opens d's snapshots: its key, if it has one.
func (d *DB) keys() []Key {
	if d.key.IsZero() {
		return nil
	}
	return []Key{d.key}
}

// Key returns security.db's key, for the key commands (zero for config.db).
func (d *DB) Key() Key { return d.key }

// ListBackups returns the snapshots in dir, newest first. Files that are not
// FLM snapshots are skipped; security snapshots that none of keys opens are
// listed with KeyMismatch.
func ListBackups(ctx context.Context, dir string, keys ...Key) ([]Backup, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return []Backup{}, nil
	}
	if err != nil {
		return nil, flmerr.Wrap(err, flmerr.IOError, "read backup dir")
	}
	out := []Backup{}
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".db") {
			continue
		}
		b, err := Inspect(ctx, filepath.Join(dir, e.Name()), keys...)
		if flmerr.Is(err, flmerr.DBKeyUnavailable) {
			st, serr := e.Info()
			if serr != nil {
				continue
			}
			created, _ := stampOf(e.Name())
			b = Backup{Path: filepath.Join(dir, e.Name()), Kind: Security, CreatedAt: created, SizeBytes: st.Size(), Unit: unitOf(e.Name()), Auto: autoName(e.Name()), Encrypted: true, KeyMismatch: true}
		} else if err != nil {
			continue
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Backup) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.Path, a.Path)
	})
	return out, nil
}

// staleTemp removes temporary snapshot files of kind that a crashed
// process left (older than maxAge: a snapshot in progress is younger).
func staleTemp(dir string, kind Kind, maxAge time.Duration) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "."+string(kind)+"-") || !strings.Contains(e.Name(), ".tmp-") {
			continue
		}
		if st, err := e.Info(); err == nil && time.Since(st.ModTime()) >= maxAge {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// prune keeps the newest KeepBackups units made by the user and the newest
// KeepAutoBackups automatic ones, and removes the other units whole (never
// one snapshot of a pair). Units in keep, units with a snapshot none of
// keys opens, and files this package did not name are left alone.
func prune(ctx context.Context, dir string, keep []string, keys ...Key) error {
	staleTemp(dir, Config, time.Hour)
	staleTemp(dir, Security, time.Hour)
	all, err := ListBackups(ctx, dir, keys...)
	if err != nil {
		return err
	}
	type unit struct {
		files   []string
		auto    bool
		blocked bool
	}
	units := map[string]*unit{}
	var order []string // newest first: all is sorted so
	for _, b := range all {
		if _, named := stampOf(filepath.Base(b.Path)); !named {
			continue
		}
		u, ok := units[b.Unit]
		if !ok {
			u = &unit{auto: b.Auto}
			units[b.Unit] = u
			order = append(order, b.Unit)
		}
		u.files = append(u.files, b.Path)
		u.blocked = u.blocked || b.KeyMismatch
	}
	var manual, auto int
	for _, name := range order {
		u := units[name]
		if u.blocked {
			continue
		}
		n, limit := &manual, KeepBackups
		if u.auto {
			n, limit = &auto, KeepAutoBackups
		}
		*n++
		if *n <= limit || slices.Contains(keep, name) {
			continue
		}
		for _, p := range u.files {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return flmerr.Wrap(err, flmerr.IOError, "prune old backup")
			}
		}
	}
	return nil
}

// Inspect validates that path is an FLM snapshot and describes it. An
// encrypted (security) snapshot must open with one of keys. Anything else
// (not SQLite, another program's SQLite file, a damaged file) is
// INVALID_ARGUMENT; a security snapshot under a key not given is
// DB_KEY_UNAVAILABLE, naming import-db-key.
func Inspect(ctx context.Context, path string, keys ...Key) (Backup, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Backup{}, flmerr.Wrap(err, flmerr.InvalidArgument, "read backup")
	}
	if !st.Mode().IsRegular() {
		return Backup{}, flmerr.New(flmerr.InvalidArgument, "%s is not a regular file", path)
	}
	state, err := securityState(path)
	if err != nil {
		return Backup{}, flmerr.Wrap(err, flmerr.InvalidArgument, "read backup")
	}
	if state == stateNew {
		return Backup{}, flmerr.New(flmerr.InvalidArgument, "%s is empty, not an FLM backup", path)
	}
	var conn *sqlite3.Conn
	var key Key
	if state == statePlain {
		conn, err = rawOpen(path, Key{}, true)
		if err != nil {
			return Backup{}, flmerr.Wrap(err, flmerr.InvalidArgument, "%s is not a readable FLM backup", path)
		}
	} else {
		for _, k := range keys {
			if !decrypts(path, k) {
				continue
			}
			if conn, err = rawOpen(path, k, true); err == nil {
				key = k
				break
			}
		}
		if conn == nil {
			if m := backupName.FindStringSubmatch(filepath.Base(path)); m != nil && m[1] == string(Security) {
				return Backup{}, flmerr.New(flmerr.DBKeyUnavailable,
					"%s cannot be read with security.db's current key: it was made under another key (from another machine, or before a key rotation that could not reach it). Import that key with `flm security import-db-key --file <key file>` (written by `flm security export-db-key` where the backup was made), then restore again", path)
			}
			return Backup{}, flmerr.New(flmerr.InvalidArgument, "%s is not an FLM backup (not an SQLite file, nor one encrypted with security.db's key)", path)
		}
	}
	defer conn.Close()
	var appID, version int
	var check string
	for q, dst := range map[string]any{"PRAGMA application_id": &appID, "PRAGMA user_version": &version, "PRAGMA quick_check": &check} {
		if err := scanOne(conn, q, dst); err != nil {
			return Backup{}, flmerr.Wrap(scrub(err, key), flmerr.InvalidArgument, "%s is not a readable FLM backup", path)
		}
	}
	kind, ok := kindOfAppID(int32(appID))
	if !ok {
		return Backup{}, flmerr.New(flmerr.InvalidArgument, "%s is not an FLM backup (an SQLite file of another program)", path)
	}
	if check != "ok" {
		return Backup{}, flmerr.New(flmerr.InvalidArgument, "%s is damaged (integrity check: %.200s)", path, check)
	}
	created, ok := stampOf(filepath.Base(path))
	if !ok {
		created = st.ModTime().UTC().Truncate(time.Millisecond)
	}
	b := Backup{Path: path, Kind: kind, CreatedAt: created, SchemaVersion: version, SizeBytes: st.Size(), Unit: unitOf(path), Auto: autoName(path), Encrypted: !key.IsZero(), key: key}
	if !key.IsZero() {
		b.KeyID = key.ID()
	}
	return b, nil
}

func scanOne(conn *sqlite3.Conn, q string, dst any) error {
	stmt, _, err := conn.Prepare(q)
	if err != nil {
		return err
	}
	defer stmt.Close()
	if !stmt.Step() {
		if err := stmt.Err(); err != nil {
			return err
		}
		return fmt.Errorf("%s returned no row", q)
	}
	switch p := dst.(type) {
	case *int:
		*p = stmt.ColumnInt(0)
	case *string:
		*p = stmt.ColumnText(0)
	}
	return stmt.Err()
}

// Restore replaces d's contents with the snapshot at path through SQLite's
// online backup API (safe while other processes have the file open), then
// migrates it to the current schema. The snapshot must be of d's kind and
// not newer than this binary's schema.
func (d *DB) Restore(ctx context.Context, b Backup) error {
	if err := d.restorable(b); err != nil {
		return err
	}
	if err := d.writable(); err != nil {
		return err
	}
	src := fileURI(b.Path, url.Values{"mode": {"ro"}})
	if b.Encrypted {
		src = encURI(b.Path, b.key, true)
	}
	err := d.rawConn(ctx, func(c *sqlite3.Conn) error {
		return c.Restore("main", src)
	})
	if err != nil {
		err = scrub(scrub(err, b.key), d.key)
		if isDiskErr(d.Path, err) {
			return diskFullErr(d.Path, err)
		}
		return dbErr(d.Path, "restore", err)
	}
	restrictSidecars(d.Path)
	// A restore can bring an older schema: bring it up to date now.
	if err := d.migrate(ctx, ""); err != nil {
		return flmerr.Wrap(err, flmerr.MigrationFailed, "migrate restored %s", d.Path)
	}
	d.readOnly = nil
	return nil
}

// restorable refuses a snapshot d cannot take: another kind, a newer
// schema, or a key this machine does not have.
func (d *DB) restorable(b Backup) error {
	if b.Kind != d.Kind {
		return flmerr.New(flmerr.InvalidArgument, "%s is a %s backup, not a %s backup", b.Path, b.Kind, d.Kind)
	}
	if latest := SchemaVersion(d.Kind); b.SchemaVersion > latest {
		return flmerr.New(flmerr.InvalidArgument, "%s has schema version %d, newer than this flm supports (%d); upgrade flm to restore it", b.Path, b.SchemaVersion, latest)
	}
	if b.KeyMismatch {
		return flmerr.New(flmerr.DBKeyUnavailable, "%s was made under another key; import it with `flm security import-db-key --file <key file>`, then restore again", b.Path)
	}
	return nil
}

// writable gives d a read-write handle: a file that failed to migrate is
// open read-only, and restoring is its recovery.
func (d *DB) writable() error {
	if d.readOnly == nil {
		return nil
	}
	rw, err := openGorm(d.Path, false, d.key)
	if err != nil {
		return dbErr(d.Path, "open for restore", err)
	}
	ro := d.gdb
	d.gdb = rw
	_ = closeGorm(ro)
	return nil
}

// probeWrite takes and releases d's write lock (waiting busy_timeout for
// it), so that a file another process holds is found before anything is
// replaced.
func (d *DB) probeWrite(ctx context.Context) error {
	err := d.rawConn(ctx, func(c *sqlite3.Conn) error {
		if err := c.Exec("BEGIN IMMEDIATE"); err != nil {
			return err
		}
		return c.Exec("ROLLBACK")
	})
	if err != nil {
		err = scrub(err, d.key)
		if errors.Is(err, sqlite3.BUSY) || errors.Is(err, sqlite3.LOCKED) {
			return flmerr.Wrap(err, flmerr.DBError, "%s is locked by another process (a running proxy, UI or sqlite3 shell?) and could not be written within %v", d.Path, busyTimeout)
		}
		return dbErr(d.Path, "lock for restore", err)
	}
	return nil
}

// Restored is one database a unit restore replaced.
type Restored struct {
	Kind                Kind   `json:"kind"`
	BackupPath          string `json:"backup_path"`
	RestoredPath        string `json:"restored_path"`
	PreviousStateBackup string `json:"previous_state_backup"`
	SchemaVersion       int    `json:"schema_version"`
}

// RestoreUnit restores the snapshots of one backup unit, each into the
// open database of its kind in dbs, all or nothing: it refuses a snapshot
// it cannot restore and a database another process holds locked before
// writing anything, snapshots the current state of every database it will
// replace (one automatic unit that prunes nothing), then restores
// security.db first. When a later restore fails, the ones already done are
// put back from that snapshot, and the error says exactly what is in
// place and where the previous state is.
func RestoreUnit(ctx context.Context, dir string, now time.Time, unit []Backup, dbs map[Kind]*DB) ([]Restored, error) {
	if len(unit) == 0 {
		return nil, flmerr.New(flmerr.InvalidArgument, "no snapshot to restore")
	}
	unit = slices.Clone(unit)
	// security.db first: it is the one whose restore can need a key.
	slices.SortStableFunc(unit, func(x, y Backup) int { return strings.Compare(string(y.Kind), string(x.Kind)) })
	targets := make([]*DB, 0, len(unit))
	for i, b := range unit {
		d := dbs[b.Kind]
		if d == nil {
			return nil, flmerr.New(flmerr.Internal, "no open %s database to restore %s into", b.Kind, b.Path)
		}
		if i > 0 && unit[i-1].Kind == b.Kind {
			return nil, flmerr.New(flmerr.InvalidArgument, "%s and %s are both %s snapshots: a unit has one per database", unit[i-1].Path, b.Path, b.Kind)
		}
		if err := d.restorable(b); err != nil {
			return nil, err
		}
		targets = append(targets, d)
	}
	for _, d := range targets {
		if err := d.writable(); err != nil {
			return nil, fmt.Errorf("%w; nothing was restored", err)
		}
		if err := d.probeWrite(ctx); err != nil {
			return nil, fmt.Errorf("%w; nothing was restored", err)
		}
	}
	// Nothing stored is ever lost: the state being replaced is kept too.
	safety, err := SnapshotUnit(ctx, dir, now, SnapshotOptions{Auto: true, NoPrune: true}, targets...)
	if err != nil {
		return nil, fmt.Errorf("snapshot before restore (nothing was restored): %w", err)
	}
	var out []Restored
	for i, b := range unit {
		d := targets[i]
		err := d.Restore(ctx, b)
		r := Restored{Kind: b.Kind, BackupPath: b.Path, RestoredPath: d.Path, PreviousStateBackup: safety[i].Path, SchemaVersion: d.Version()}
		if err != nil {
			if flmerr.Is(err, flmerr.MigrationFailed) {
				out = append(out, r) // replaced, then failed to migrate: put it back too
			}
			return nil, restoreFailed(ctx, b, d, err, out, safety, targets)
		}
		out = append(out, r)
	}
	return out, nil
}

// restoreFailed puts back what a failed unit restore already replaced and
// says exactly what is in place.
func restoreFailed(ctx context.Context, b Backup, d *DB, cause error, done []Restored, safety []Backup, targets []*DB) error {
	code := flmerr.CodeOf(cause)
	if code == flmerr.Internal {
		code = flmerr.DBError
	}
	var msg strings.Builder
	fmt.Fprintf(&msg, "restoring %s from %s failed: %v. ", d.Path, b.Path, cause)
	var kept []string
	for _, s := range safety {
		kept = append(kept, s.Path)
	}
	if len(done) == 0 {
		fmt.Fprintf(&msg, "Nothing was restored; ")
	}
	for i := len(done) - 1; i >= 0; i-- {
		r := done[i]
		if rerr := targets[i].Restore(ctx, safety[i]); rerr != nil {
			fmt.Fprintf(&msg, "%s WAS restored from %s, and putting it back failed (%v): its state before the restore is in %s (restore it with `flm security backup restore --file %s`); ", r.RestoredPath, r.BackupPath, rerr, safety[i].Path, safety[i].Path)
			continue
		}
		fmt.Fprintf(&msg, "%s, already restored from %s, was put back as it was; ", r.RestoredPath, r.BackupPath)
	}
	fmt.Fprintf(&msg, "the state before the restore is kept in %s", strings.Join(kept, " and "))
	return &flmerr.Error{Code: code, Message: msg.String(), Err: cause}
}

// Count returns the number of rows in table (used by checks).
func (d *DB) Count(ctx context.Context, table, where string) (int64, error) {
	var n int64
	err := d.read(ctx, "count "+table, func(tx *gorm.DB) error {
		q := tx.Table(table)
		if where != "" {
			q = q.Where(where)
		}
		return q.Count(&n).Error
	})
	return n, err
}

// QuickCheck runs PRAGMA quick_check.
func (d *DB) QuickCheck(ctx context.Context) error {
	var res string
	if err := d.read(ctx, "check", func(tx *gorm.DB) error { return tx.Raw("PRAGMA quick_check").Scan(&res).Error }); err != nil {
		return err
	}
	if res != "ok" {
		return flmerr.New(flmerr.DBError, "%s failed its integrity check: %.200s", d.Path, res)
	}
	return nil
}
