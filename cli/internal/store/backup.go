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

// KeepBackups is how many snapshots of each database are kept.
const KeepBackups = 3

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
	// Encrypted is set for security snapshots (always, since
	// security.db is encrypted); KeyID tells which key opens it.
	Encrypted bool   `json:"encrypted"`
	KeyID     string `json:"key_id,omitempty"`
	// KeyMismatch: a security snapshot that none of the given keys opens
	// (made under another key, or not a snapshot at all). Listed so the
	// user sees it, never pruned, never restorable until its key is
	// imported.
	KeyMismatch bool `json:"key_mismatch,omitempty"`

	key Key
}

// Snapshot files are named <kind>-<UTC stamp>[-n].db; the stamp, not the
// file's mtime (which a copy changes), orders them.
const stampLayout = "20060102T150405.000Z"

var backupName = regexp.MustCompile(`^(config|security)-(\d{8}T\d{9}Z(?:-\d+)?)\.db$`)

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

// Snapshot writes a consistent copy of d into dir with VACUUM INTO (never a
// raw copy of a live file), 0600, and prunes all but the newest KeepBackups
// snapshots of d's kind. keep, if not empty, is never pruned. A security
// snapshot is encrypted with security.db's key.
func (d *DB) Snapshot(ctx context.Context, dir string, now time.Time, keep string) (Backup, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Backup{}, flmerr.Wrap(err, flmerr.IOError, "create backup dir")
	}
	stamp := strings.Replace(now.UTC().Format(stampLayout), ".", "", 1)
	// The copy is written under a temporary name and linked into place
	// whole: a crash never leaves a half-written snapshot that would look
	// like one made under another key.
	tmpf, err := os.CreateTemp(dir, "."+string(d.Kind)+"-"+stamp+".tmp-*")
	if err != nil {
		return Backup{}, flmerr.Wrap(err, flmerr.IOError, "create backup file")
	}
	tmp := tmpf.Name()
	_ = tmpf.Close() // VACUUM INTO accepts an existing empty file, so it inherits 0600.
	defer os.Remove(tmp)
	target := tmp
	if !d.key.IsZero() {
		target = encURI(tmp, d.key, false)
	}
	if err := d.gdb.WithContext(ctx).Exec("VACUUM INTO ?", target).Error; err != nil {
		err = scrub(err, d.key)
		if isDiskErr(tmp, err) {
			return Backup{}, diskFullErr(filepath.Join(dir, string(d.Kind)+"-"+stamp+".db"), err)
		}
		return Backup{}, dbErr(d.Path, "back up", err)
	}
	if err := syncFile(tmp); err != nil {
		return Backup{}, flmerr.Wrap(err, flmerr.IOError, "write backup")
	}
	var path string
	for i := 0; ; i++ {
		name := fmt.Sprintf("%s-%s.db", d.Kind, stamp)
		if i > 0 {
			name = fmt.Sprintf("%s-%s-%d.db", d.Kind, stamp, i)
		}
		path = filepath.Join(dir, name)
		err := os.Link(tmp, path) // never replaces an existing snapshot
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || i > 100 {
			return Backup{}, flmerr.Wrap(err, flmerr.IOError, "create backup file")
		}
	}
	keychain.SyncDir(dir)
	b, err := Inspect(ctx, path, d.keys()...)
	if err != nil {
		return Backup{}, err
	}
	if err := prune(ctx, dir, d.Kind, keep, d.keys()...); err != nil {
		return Backup{}, err
	}
	return b, nil
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
			b = Backup{Path: filepath.Join(dir, e.Name()), Kind: Security, CreatedAt: created, SizeBytes: st.Size(), Unit: unitOf(e.Name()), Encrypted: true, KeyMismatch: true}
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
// process left (older than an hour: a snapshot in progress is younger).
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

func prune(ctx context.Context, dir string, kind Kind, keep string, keys ...Key) error {
	staleTemp(dir, kind, time.Hour)
	all, err := ListBackups(ctx, dir, keys...)
	if err != nil {
		return err
	}
	n := 0
	for _, b := range all {
		// Only files this package named are pruned; anything else a user
		// put in backups/ is left alone.
		if _, named := stampOf(filepath.Base(b.Path)); b.Kind != kind || !named || b.KeyMismatch {
			continue
		}
		n++
		if n > KeepBackups && b.Path != keep {
			if err := os.Remove(b.Path); err != nil {
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
	b := Backup{Path: path, Kind: kind, CreatedAt: created, SchemaVersion: version, SizeBytes: st.Size(), Unit: unitOf(path), Encrypted: !key.IsZero(), key: key}
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
	if b.Kind != d.Kind {
		return flmerr.New(flmerr.InvalidArgument, "%s is a %s backup, not a %s backup", b.Path, b.Kind, d.Kind)
	}
	if latest := SchemaVersion(d.Kind); b.SchemaVersion > latest {
		return flmerr.New(flmerr.InvalidArgument, "%s has schema version %d, newer than this flm supports (%d); upgrade flm to restore it", b.Path, b.SchemaVersion, latest)
	}
	if d.readOnly != nil {
		// The file failed to migrate and is open read-only; restoring is
		// the recovery, so write through a fresh read-write handle.
		rw, err := openGorm(d.Path, false, d.key)
		if err != nil {
			return dbErr(d.Path, "open for restore", err)
		}
		ro := d.gdb
		d.gdb = rw
		_ = closeGorm(ro)
	}
	if b.KeyMismatch {
		return flmerr.New(flmerr.DBKeyUnavailable, "%s was made under another key; import it with `flm security import-db-key --file <key file>`, then restore again", b.Path)
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
