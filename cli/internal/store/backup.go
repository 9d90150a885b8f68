package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"
	"gorm.io/gorm"

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
}

// Snapshot files are named <kind>-<UTC stamp>[-n].db; the stamp, not the
// file's mtime (which a copy changes), orders them.
const stampLayout = "20060102T150405.000Z"

var backupName = regexp.MustCompile(`^(config|security)-(\d{8}T\d{9}Z)(?:-\d+)?\.db$`)

// stampOf parses the creation time from a snapshot's file name.
func stampOf(name string) (time.Time, bool) {
	m := backupName.FindStringSubmatch(name)
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102T150405.000Z", m[2][:15]+"."+m[2][15:])
	return t, err == nil
}

// Snapshot writes a consistent copy of d into dir with VACUUM INTO (never a
// raw copy of a live file), 0600, and prunes all but the newest KeepBackups
// snapshots of d's kind. keep, if not empty, is never pruned.
func (d *DB) Snapshot(ctx context.Context, dir string, now time.Time, keep string) (Backup, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Backup{}, flmerr.Wrap(err, flmerr.IOError, "create backup dir")
	}
	stamp := strings.Replace(now.UTC().Format(stampLayout), ".", "", 1)
	var path string
	var f *os.File
	for i := 0; ; i++ {
		name := fmt.Sprintf("%s-%s.db", d.Kind, stamp)
		if i > 0 {
			name = fmt.Sprintf("%s-%s-%d.db", d.Kind, stamp, i)
		}
		path = filepath.Join(dir, name)
		var err error
		// VACUUM INTO accepts an existing empty file, so it inherits 0600.
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || i > 100 {
			return Backup{}, flmerr.Wrap(err, flmerr.IOError, "create backup file")
		}
	}
	_ = f.Close()
	if err := d.gdb.WithContext(ctx).Exec("VACUUM INTO ?", path).Error; err != nil {
		_ = os.Remove(path)
		return Backup{}, dbErr(d.Path, "back up", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return Backup{}, flmerr.Wrap(err, flmerr.IOError, "restrict backup %s", path)
	}
	b, err := Inspect(ctx, path)
	if err != nil {
		return Backup{}, err
	}
	if err := prune(ctx, dir, d.Kind, keep); err != nil {
		return Backup{}, err
	}
	return b, nil
}

// ListBackups returns the snapshots in dir, newest first. Files that are not
// FLM snapshots are skipped.
func ListBackups(ctx context.Context, dir string) ([]Backup, error) {
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
		b, err := Inspect(ctx, filepath.Join(dir, e.Name()))
		if err != nil {
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

func prune(ctx context.Context, dir string, kind Kind, keep string) error {
	all, err := ListBackups(ctx, dir)
	if err != nil {
		return err
	}
	n := 0
	for _, b := range all {
		// Only files this package named are pruned; anything else a user
		// put in backups/ is left alone.
		if _, named := stampOf(filepath.Base(b.Path)); b.Kind != kind || !named {
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

// Inspect validates that path is an FLM snapshot and describes it. Anything
// else (not SQLite, another program's SQLite file, a damaged file) is
// INVALID_ARGUMENT.
func Inspect(ctx context.Context, path string) (Backup, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Backup{}, flmerr.Wrap(err, flmerr.InvalidArgument, "read backup")
	}
	if !st.Mode().IsRegular() {
		return Backup{}, flmerr.New(flmerr.InvalidArgument, "%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return Backup{}, flmerr.Wrap(err, flmerr.InvalidArgument, "read backup")
	}
	head := make([]byte, len(sqliteHeader))
	n, _ := f.Read(head)
	_ = f.Close()
	if n != len(head) || string(head) != string(sqliteHeader) {
		return Backup{}, flmerr.New(flmerr.InvalidArgument, "%s is not an FLM backup (not an SQLite file)", path)
	}
	conn, err := sqlite3.OpenFlags(path, sqlite3.OPEN_READONLY)
	if err != nil {
		return Backup{}, flmerr.Wrap(err, flmerr.InvalidArgument, "%s is not a readable FLM backup", path)
	}
	defer conn.Close()
	var appID, version int
	var check string
	for q, dst := range map[string]any{"PRAGMA application_id": &appID, "PRAGMA user_version": &version, "PRAGMA quick_check": &check} {
		if err := scanOne(conn, q, dst); err != nil {
			return Backup{}, flmerr.Wrap(err, flmerr.InvalidArgument, "%s is not a readable FLM backup", path)
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
	return Backup{Path: path, Kind: kind, CreatedAt: created, SchemaVersion: version, SizeBytes: st.Size()}, nil
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
		rw, err := openGorm(d.Path, false)
		if err != nil {
			return dbErr(d.Path, "open for restore", err)
		}
		ro := d.gdb
		d.gdb = rw
		_ = closeGorm(ro)
	}
	err := d.rawConn(ctx, func(c *sqlite3.Conn) error {
		return c.Restore("main", b.Path)
	})
	if err != nil {
		return dbErr(d.Path, "restore", err)
	}
	restrictSidecars(d.Path)
	// A restore can bring an older schema: bring it up to date now.
	if err := d.migrate(ctx); err != nil {
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
