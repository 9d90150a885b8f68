package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"
	sqlitedriver "github.com/ncruces/go-sqlite3/driver"
	"github.com/ncruces/go-sqlite3/gormlite"
	_ "github.com/ncruces/go-sqlite3/vfs/adiantum" // registers the "adiantum" VFS
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/unjuno/flm/core/flmerr"
)

// Kind names one of FLM's two databases.
type Kind string

// The two databases.
const (
	Config   Kind = "config"
	Security Kind = "security"
)

// FileName is the file a kind lives in, inside the data dir.
func (k Kind) FileName() string { return string(k) + ".db" }

// appID marks a SQLite file as FLM's (PRAGMA application_id), so a restore
// can tell an FLM backup from any other SQLite file.
func (k Kind) appID() int32 {
	if k == Security {
		return 0x464c4d53 // "FLMS"
	}
	return 0x464c4d43 // "FLMC"
}

func kindOfAppID(id int32) (Kind, bool) {
	for _, k := range []Kind{Config, Security} {
		if k.appID() == id {
			return k, true
		}
	}
	return "", false
}

// BusyTimeout is how long a statement waits for another process's lock.
const BusyTimeout = 15 * time.Second

// busyTimeout is BusyTimeout; tests shorten it.
var busyTimeout = BusyTimeout

var sqliteHeader = []byte("SQLite format 3\x00")

// DB is one open FLM database.
type DB struct {
	Kind Kind
	Path string
	gdb  *gorm.DB
	// version is the schema version found (or reached by migration).
	version int
	// readOnly, when set, is the DB_READ_ONLY error every write returns.
	readOnly error
	// key is security.db's key (zero for config.db); it lives only as
	// long as the handle, and new pool connections need it.
	key Key
	// source is where key came from.
	source KeySource
	// lock is held shared while the handle is open (security.db only).
	lock *dbLock
}

// Version is the database's schema version.
func (d *DB) Version() int { return d.version }

// ReadOnly returns the reason writes are refused, or nil.
func (d *DB) ReadOnly() error { return d.readOnly }

// Close closes the database.
func (d *DB) Close() error {
	err := closeGorm(d.gdb)
	d.lock.close()
	d.lock = nil
	return err
}

func closeGorm(g *gorm.DB) error {
	sdb, err := g.DB()
	if err != nil {
		return err
	}
	return sdb.Close()
}

// dsn is the connection string. It never holds the key: the key is set
// by PRAGMA on each new connection (see openGorm), so it cannot leak
// through the URI into an error or a log line.
//
// immutable opens the main file alone, with no locks and no WAL or
// shared-memory file (for a full disk, when there is no WAL).
func dsn(path string, readOnly, encrypted, immutable bool) string {
	q := url.Values{}
	if immutable {
		q.Set("immutable", "1")
	}
	var pragmas []string
	pragmas = append(pragmas, fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	if readOnly {
		q.Set("mode", "ro")
	} else {
		q.Set("_txlock", "immediate")
		pragmas = append(pragmas, "synchronous(normal)")
	}
	pragmas = append(pragmas, "foreign_keys(on)")
	if encrypted {
		q.Set("vfs", Cipher)
	} else {
		// An encrypted file gets these after its key (connPragmas): before
		// it, a pragma that reads the WAL fails.
		q["_pragma"] = pragmas
	}
	u := url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}

// connPragmas are run on each new connection to an encrypted file, right
// after its key. Temporary files would be encrypted with throwaway keys;
// in memory they cost nothing.
func connPragmas(readOnly bool) []string {
	p := []string{fmt.Sprintf("PRAGMA busy_timeout=%d", busyTimeout.Milliseconds())}
	if !readOnly {
		p = append(p, "PRAGMA synchronous=normal")
	}
	return append(p, "PRAGMA foreign_keys=on", "PRAGMA temp_store=memory")
}

// errKeyPragma replaces whatever setting the key failed with: that
// error's text might quote the statement, and the statement holds the key.
var errKeyPragma = errors.New("the encryption key was refused")

// openGorm opens path; a non-zero key opens it through the encrypting VFS.
func openGorm(path string, readOnly bool, key Key) (*gorm.DB, error) {
	return openGormMode(path, readOnly, false, key)
}

func openGormMode(path string, readOnly, immutable bool, key Key) (*gorm.DB, error) {
	var init func(*sqlite3.Conn) error
	if !key.IsZero() {
		hexKey := key.hex
		init = func(c *sqlite3.Conn) error {
			if err := c.Exec("PRAGMA hexkey='" + hexKey + "'"); err != nil {
				return errKeyPragma
			}
			for _, p := range connPragmas(readOnly) {
				if err := c.Exec(p); err != nil {
					return err
				}
			}
			return nil
		}
	}
	sdb, err := sqlitedriver.Open(dsn(path, readOnly, !key.IsZero(), immutable), init)
	if err != nil {
		return nil, scrub(err, key)
	}
	g, err := gorm.Open(gormlite.OpenDB(sdb), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		_ = sdb.Close()
		return nil, scrub(err, key)
	}
	sdb.SetMaxOpenConns(4)
	sdb.SetConnMaxIdleTime(time.Minute)
	return g, nil
}

// Option adjusts Open.
type Option func(*openOptions)

type openOptions struct {
	keys    *KeyConfig
	noCrypt bool
}

// WithKeys says where security.db's key comes from. Without it, Open uses
// the environment (FLM_DB_KEY_SOURCE, FLM_DB_KEY, the OS keychain), as the
// flm binary does with no flags.
func WithKeys(c KeyConfig) Option { return func(o *openOptions) { o.keys = &c } }

// Open opens (creating if needed) the database of kind in dir and migrates
// it. A failed migration is not an error: the DB is opened read-only and
// ReadOnly says why. Errors name the file.
//
// security.db is encrypted (see crypt.go): Open finds its key, encrypts a
// plaintext file left by an earlier version, finishes an interrupted key
// rotation, and holds a shared lock on the file until Close.
func Open(ctx context.Context, dir string, kind Kind, opts ...Option) (*DB, error) {
	var o openOptions
	for _, opt := range opts {
		opt(&o)
	}
	if kind == Security && !o.noCrypt {
		cfg := KeyConfigFromEnv(os.Getenv)
		if o.keys != nil {
			cfg = *o.keys
		}
		return openSecurity(ctx, dir, cfg)
	}
	return openFile(ctx, dir, kind, Key{}, KeySource{})
}

// openFile opens one database file with key (zero = plaintext).
func openFile(ctx context.Context, dir string, kind Kind, key Key, src KeySource) (*DB, error) {
	path := filepath.Join(dir, kind.FileName())
	if err := prepareFile(path, !key.IsZero()); err != nil {
		return nil, err
	}
	g, err := openGorm(path, false, key)
	if err != nil {
		if !key.IsZero() && (errors.Is(err, sqlite3.NOTADB) || errors.Is(err, sqlite3.CORRUPT)) {
			return nil, undecryptable(path, src, key, err)
		}
		if isDiskErr(path, err) {
			// Opening a WAL file read-write creates its shared-memory
			// file; on a full disk that fails, reading need not.
			return openReadOnly(ctx, &DB{Kind: kind, Path: path, key: key, source: src}, err)
		}
		return nil, dbErr(path, "open", err)
	}
	d := &DB{Kind: kind, Path: path, gdb: g, key: key, source: src}
	if err := d.checkAppID(ctx); err != nil {
		_ = d.Close()
		return nil, err
	}
	if err := d.ensureWAL(ctx); err != nil {
		_ = d.Close()
		if isDiskErr(path, err) {
			return openReadOnly(ctx, d, err)
		}
		return nil, dbErr(path, "switch to WAL", err)
	}
	if merr := d.migrate(ctx, filepath.Join(dir, "backups")); merr != nil {
		_ = d.Close()
		if isDiskErr(path, merr) {
			return openReadOnly(ctx, d, merr)
		}
		ro, err := openGorm(path, true, key)
		if err != nil {
			return nil, dbErr(path, "open read-only", err)
		}
		d.gdb = ro
		d.readOnly = &flmerr.Error{
			Code: flmerr.DBReadOnly,
			Message: fmt.Sprintf("%s is read-only: %s. To recover, restore a backup (`flm security backup list`, then `flm security backup restore --file <file>`) or upgrade flm if the file was written by a newer version",
				path, scrub(merr, key).Error()),
			Err: scrub(merr, key),
		}
	}
	restrictSidecars(path)
	return d, nil
}

// openReadOnly reopens d read-only after a write at open failed for lack of
// space: reads keep working, and every write says why it cannot.
func openReadOnly(ctx context.Context, d *DB, cause error) (*DB, error) {
	var v int
	ro, err := openGorm(d.Path, true, d.key)
	if err == nil {
		err = ro.WithContext(ctx).Raw("PRAGMA user_version").Scan(&v).Error
		if err != nil {
			_ = closeGorm(ro)
		}
	}
	if err != nil {
		// Even a read-only open needs the shared-memory file of a WAL
		// database. With no WAL to read (the file was closed cleanly), the
		// main file alone is the whole database: open it immutable.
		if st, serr := os.Stat(d.Path + "-wal"); serr == nil && st.Size() > 0 {
			return nil, dbErr(d.Path, "open", cause)
		}
		ro, err = openGormMode(d.Path, true, true, d.key)
		if err == nil {
			err = ro.WithContext(ctx).Raw("PRAGMA user_version").Scan(&v).Error
			if err != nil {
				_ = closeGorm(ro)
			}
		}
		if err != nil {
			return nil, dbErr(d.Path, "open", cause)
		}
	}
	d.gdb = ro
	d.version = v
	d.readOnly = diskFullErr(d.Path, cause)
	return d, nil
}

// prepareFile creates path 0600 if missing and refuses a file that is not
// SQLite, before the driver can misread it. An encrypted file has no header
// to check: a wrong key or a damaged file shows when it is read.
func prepareFile(path string, encrypted bool) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "open %s", path)
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "restrict permissions of %s", path)
	}
	if encrypted {
		return nil
	}
	head := make([]byte, len(sqliteHeader))
	n, err := io.ReadFull(f, head)
	if n == 0 && (err == io.EOF) {
		return nil // new, empty file
	}
	if err != nil && err != io.ErrUnexpectedEOF {
		return flmerr.Wrap(err, flmerr.IOError, "read %s", path)
	}
	if !bytes.Equal(head[:n], sqliteHeader) {
		return flmerr.New(flmerr.DBError, "%s is not an SQLite database (it may be corrupted or overwritten); move it away and restore a backup with `flm security backup restore --file <file>`", path)
	}
	return nil
}

// ensureWAL switches the file to WAL mode once (the mode is persistent).
// The switch needs an exclusive lock and SQLite does not wait for it through
// the busy handler, so two flm processes creating the file at the same
// moment retry here instead of failing with "database is locked".
func (d *DB) ensureWAL(ctx context.Context) error {
	deadline := time.Now().Add(busyTimeout)
	for {
		var mode string
		err := d.gdb.WithContext(ctx).Raw("PRAGMA journal_mode").Scan(&mode).Error
		if err == nil && strings.EqualFold(mode, "wal") {
			return nil
		}
		if err == nil {
			err = d.gdb.WithContext(ctx).Raw("PRAGMA journal_mode = WAL").Scan(&mode).Error
			if err == nil && strings.EqualFold(mode, "wal") {
				return nil
			}
		}
		if err != nil && !errors.Is(err, sqlite3.BUSY) && !errors.Is(err, sqlite3.LOCKED) {
			return err
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("journal mode is %q", mode)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(5+rand.IntN(20)) * time.Millisecond):
		}
	}
}

// restrictSidecars narrows the WAL and shared-memory files to 0600: the
// driver creates them with the process umask.
func restrictSidecars(path string) {
	for _, s := range []string{"-wal", "-shm"} {
		_ = os.Chmod(path+s, 0o600)
	}
}

func (d *DB) checkAppID(ctx context.Context) error {
	var id int32
	if err := d.gdb.WithContext(ctx).Raw("PRAGMA application_id").Scan(&id).Error; err != nil {
		if !d.key.IsZero() && (errors.Is(err, sqlite3.NOTADB) || errors.Is(err, sqlite3.CORRUPT)) {
			return undecryptable(d.Path, d.source, d.key, err)
		}
		return dbErr(d.Path, "read application id", err)
	}
	if id != 0 && id != d.Kind.appID() {
		other, ok := kindOfAppID(id)
		if ok {
			return flmerr.New(flmerr.DBError, "%s holds FLM's %s database, not its %s database; move it away or restore a backup", d.Path, other, d.Kind)
		}
		return flmerr.New(flmerr.DBError, "%s is an SQLite file of another program (application_id %#x), not FLM's %s database", d.Path, id, d.Kind)
	}
	return nil
}

// dbErr classifies a driver error: a full disk or unwritable file is
// IO_ERROR, anything else DB_ERROR; the message names the file.
func dbErr(path, op string, err error) error {
	var fe *flmerr.Error
	if errors.As(err, &fe) {
		return err
	}
	switch {
	case errors.Is(err, sqlite3.FULL):
		return flmerr.Wrap(err, flmerr.IOError, "%s %s: the disk is full; nothing was changed", op, path)
	case errors.Is(err, sqlite3.READONLY), errors.Is(err, sqlite3.CANTOPEN), errors.Is(err, sqlite3.IOERR), errors.Is(err, sqlite3.PERM):
		return flmerr.Wrap(err, flmerr.IOError, "%s %s", op, path)
	case errors.Is(err, sqlite3.NOTADB), errors.Is(err, sqlite3.CORRUPT):
		return flmerr.Wrap(err, flmerr.DBError, "%s %s: the file is damaged; restore a backup with `flm security backup restore --file <file>`", op, path)
	}
	return flmerr.Wrap(err, flmerr.DBError, "%s %s", op, path)
}

// read runs fn for a read.
func (d *DB) read(ctx context.Context, op string, fn func(*gorm.DB) error) error {
	if err := fn(d.gdb.WithContext(ctx)); err != nil {
		return dbErr(d.Path, op, scrub(err, d.key))
	}
	return nil
}

// write runs fn in one IMMEDIATE transaction, or refuses in read-only mode.
func (d *DB) write(ctx context.Context, op string, fn func(*gorm.DB) error) error {
	if d.readOnly != nil {
		return d.readOnly
	}
	err := d.gdb.WithContext(ctx).Transaction(fn)
	if err != nil {
		if isDiskErr(d.Path, err) {
			return diskFullErr(d.Path, err)
		}
		return dbErr(d.Path, op, scrub(err, d.key))
	}
	return nil
}

// rawConn runs fn with the driver's connection (online backup API).
func (d *DB) rawConn(ctx context.Context, fn func(*sqlite3.Conn) error) error {
	sdb, err := d.gdb.DB()
	if err != nil {
		return err
	}
	conn, err := sdb.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(c any) error {
		dc, ok := c.(sqlitedriver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", c)
		}
		return fn(dc.Raw())
	})
}

// ExecForTest runs a statement outside the read-only guard. Tests use it to
// simulate files written by other versions.
func (d *DB) ExecForTest(stmt string) error { return d.gdb.Exec(stmt).Error }
