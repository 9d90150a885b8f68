package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ncruces/go-sqlite3"

	"github.com/unjuno/flm/cli/internal/keychain"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/secret"
)

// security.db at rest
//
// The file is opened through ncruces/go-sqlite3's "adiantum" VFS: every 4 KiB
// block of the database, its WAL and its journal is encrypted with a random
// 256-bit key; nothing on disk has an SQLite header or readable text.
//
// Files beside security.db, all in the data dir:
//
//	security.db.lock      advisory lock (shared: open handles; exclusive: swaps)
//	security.db.new       the next version of the file while it is built
//	security.db.old       a link to the replaced file, overwritten then removed
//	security.db.upgrading marker: first-time encryption in progress
//	security.db.rotating  marker: key rotation in progress
//
// Every operation that replaces the file writes the new file, verifies
// every table and row count, swaps it in with one rename, and only then
// overwrites and removes the old one; a crash at any moment leaves a file
// that opens with a key the key source holds, and the next open finishes or
// undoes the work (prepareSecurity).

const (
	sufNew       = ".new"
	sufOld       = ".old"
	sufUpgrading = ".upgrading"
	sufRotating  = ".rotating"
	sufLock      = ".lock"
)

// scrub removes key from err's text. SQLite errors can quote a URI, and
// the URIs of encrypted copies carry the key.
func scrub(err error, key Key) error {
	if err == nil || key.IsZero() || !strings.Contains(err.Error(), key.hex) {
		return err
	}
	return &scrubbed{msg: strings.ReplaceAll(err.Error(), key.hex, "[key]"), code: codeOf(err)}
}

// scrubbed keeps an error's SQLite code (for errors.Is) but not its text.
type scrubbed struct {
	msg  string
	code error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.code }

func codeOf(err error) error {
	var se *sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode()
	}
	var ec sqlite3.ErrorCode
	if errors.As(err, &ec) {
		return ec
	}
	var xc sqlite3.ExtendedErrorCode
	if errors.As(err, &xc) {
		return xc
	}
	return nil
}

// isDiskErr reports a write to path that failed for lack of space. The
// VFS reports a short write as a bare SQLITE_IOERR_WRITE (the errno is
// lost on the way), so an I/O error on a nearly full file system counts.
func isDiskErr(path string, err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, sqlite3.FULL) || errors.Is(err, syscall.ENOSPC) {
		return true
	}
	if !errors.Is(err, sqlite3.IOERR) && !errors.Is(err, sqlite3.CANTOPEN) {
		return false
	}
	free, ok := diskFree(filepath.Dir(path))
	return ok && free < nearlyFull
}

// nearlyFull is the free space below which an I/O error is taken for a
// full disk: less than one WAL checkpoint's worth.
const nearlyFull = 4 << 20

// diskFullErr is what a write on a full disk tells the user.
func diskFullErr(path string, err error) error {
	dir := filepath.Dir(path)
	free := ""
	if n, ok := diskFree(dir); ok {
		free = fmt.Sprintf(" (%d bytes free)", n)
	}
	return &flmerr.Error{Code: flmerr.IOError, Err: err, Message: fmt.Sprintf(
		"cannot write to %s: the disk holding %s is full%s. Reading still works; free some space and retry (nothing was changed)", path, dir, free)}
}

// sufKeyID names the file that records which key security.db is under
// (its one-way key id, nothing secret). It tells a wrong key from a damaged
// file, which otherwise look the same: bytes that do not decrypt.
const sufKeyID = ".keyid"

func readKeyID(path string) string {
	b, err := os.ReadFile(path + sufKeyID)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// noteKeyID records that path opens with key (best effort: it only
// sharpens error messages).
func noteKeyID(path string, key Key) {
	if readKeyID(path) != key.ID() {
		_ = keychain.WriteFileAtomic(path+sufKeyID, []byte(key.ID()+"\n"))
	}
}

// undecryptable is the error for a file the key does not open: damaged
// (DB_ERROR) when the recorded key id is this key's, else a wrong key.
func undecryptable(path string, src KeySource, key Key, err error) error {
	if readKeyID(path) == key.ID() {
		return flmerr.Wrap(scrub(err, key), flmerr.DBError, "%s is damaged: it no longer decrypts with its own key (key id %s). Move it away and restore a backup (`flm security backup list`, then `flm security backup restore --file <file>`)", path, key.ID())
	}
	return wrongKeyErr(path, src, key, err)
}

func wrongKeyErr(path string, src KeySource, key Key, err error) error {
	if id := readKeyID(path); id != "" && id != key.ID() {
		return &flmerr.Error{Code: flmerr.DBKeyUnavailable, Err: scrub(err, key), Message: fmt.Sprintf(
			"%s is encrypted under key id %s, but the key from the %s is key id %s. Import the right key with `flm security import-db-key --file <key file>`, or choose the key source that holds it",
			path, id, src.Name, key.ID())}
	}
	from := "its key source"
	if src.Name != "" {
		from = "the " + src.Name
	}
	return &flmerr.Error{Code: flmerr.DBKeyUnavailable, Err: scrub(err, key), Message: fmt.Sprintf(
		"%s cannot be decrypted with the key from %s (key id %s): it was encrypted under another key, or it is damaged. If you have its key, run `flm security import-db-key --file <key file>`; otherwise move %s away and restore a backup (`flm security backup list`)",
		path, from, key.ID(), path)}
}

type dbState int

const (
	stateNew dbState = iota
	statePlain
	stateEncrypted
)

// securityState tells a new (absent or empty), plaintext or encrypted file
// apart from its first bytes.
func securityState(path string) (dbState, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return stateNew, nil
	}
	if err != nil {
		return 0, flmerr.Wrap(err, flmerr.IOError, "open %s", path)
	}
	defer f.Close()
	head := make([]byte, len(sqliteHeader))
	n, err := io.ReadFull(f, head)
	switch {
	case n == 0 && errors.Is(err, io.EOF):
		return stateNew, nil
	case n == len(head) && string(head) == string(sqliteHeader):
		return statePlain, nil
	case err != nil && !errors.Is(err, io.ErrUnexpectedEOF):
		return 0, flmerr.Wrap(err, flmerr.IOError, "read %s", path)
	}
	return stateEncrypted, nil
}

// fileURI is a "file:" URI for path with params.
func fileURI(path string, q url.Values) string {
	u := url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}

// encURI opens path through the encrypting VFS with key in the URI. Such a
// URI is used only where SQLite opens a second file itself (VACUUM INTO,
// online backup); errors from those calls go through scrub.
func encURI(path string, key Key, readOnly bool) string {
	q := url.Values{}
	q.Set("vfs", Cipher)
	q.Set("hexkey", key.hex)
	if readOnly {
		q.Set("mode", "ro")
	}
	return fileURI(path, q)
}

// rawOpen opens one connection to path (zero key = plaintext).
func rawOpen(path string, key Key, readOnly bool) (*sqlite3.Conn, error) {
	q := url.Values{}
	flags := sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE | sqlite3.OPEN_URI
	if readOnly {
		flags = sqlite3.OPEN_READONLY | sqlite3.OPEN_URI
	}
	if !key.IsZero() {
		q.Set("vfs", Cipher)
	}
	c, err := sqlite3.OpenFlags(fileURI(path, q), flags)
	if err != nil {
		return nil, scrub(err, key)
	}
	if !key.IsZero() {
		if err := c.Exec("PRAGMA hexkey='" + key.hex + "'"); err != nil {
			_ = c.Close()
			return nil, errKeyPragma
		}
		_ = c.Exec("PRAGMA temp_store=memory")
	}
	if err := c.BusyTimeout(busyTimeout); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// Decrypts reports whether key opens path as an FLM security database,
// without changing any file (for tests and diagnostics).
func Decrypts(path string, key Key) bool { return decrypts(path, key) }

// decrypts reports whether key opens path as an FLM security database (or
// an empty one).
func decrypts(path string, key Key) bool {
	c, err := rawOpen(path, key, true)
	if err != nil {
		return false
	}
	defer c.Close()
	var id int
	if err := scanOne(c, "PRAGMA application_id", &id); err != nil {
		return false
	}
	return id == int(Security.appID()) || id == 0
}

// contents is what a copy must preserve: every table's row count and the
// header fields FLM uses.
func contents(c *sqlite3.Conn) (map[string]int64, error) {
	out := map[string]int64{}
	stmt, _, err := c.Prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var tables []string
	for stmt.Step() {
		tables = append(tables, stmt.ColumnText(0))
	}
	if err := stmt.Close(); err != nil {
		return nil, err
	}
	for _, t := range tables {
		var n int
		if err := scanOne(c, `SELECT count(*) FROM "`+strings.ReplaceAll(t, `"`, `""`)+`"`, &n); err != nil {
			return nil, err
		}
		out["table "+t] = int64(n)
	}
	for _, p := range []string{"user_version", "application_id"} {
		var v int
		if err := scanOne(c, "PRAGMA "+p, &v); err != nil {
			return nil, err
		}
		out["pragma "+p] = int64(v)
	}
	return out, nil
}

func sameContents(a, b map[string]int64) error {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		av, aok := a[k]
		bv, bok := b[k]
		if aok != bok || av != bv {
			return fmt.Errorf("the copy differs from the original in %s (%d rows vs %d)", k, bv, av)
		}
	}
	return nil
}

// removeDBFiles removes a database file and its sidecars.
func removeDBFiles(path string) {
	for _, s := range []string{"", "-wal", "-shm", "-journal"} {
		_ = os.Remove(path + s)
	}
}

// copyEncrypted writes a consistent copy of src (read with srcKey, zero =
// plaintext) to dst, encrypted with dstKey, and verifies it: quick_check
// and the same tables, row counts and header fields. wal leaves dst in WAL
// mode, as a live security.db is.
func copyEncrypted(ctx context.Context, src string, srcKey Key, dst string, dstKey Key, wal bool) error {
	removeDBFiles(dst)
	sc, err := rawOpen(src, srcKey, true)
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer sc.Close()
	if old := sc.SetInterrupt(ctx); old != nil {
		defer sc.SetInterrupt(old)
	}
	want, err := contents(sc)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, scrub(err, srcKey))
	}
	stmt, _, err := sc.Prepare("VACUUM INTO ?")
	if err != nil {
		return err
	}
	if err := stmt.BindText(1, encURI(dst, dstKey, false)); err != nil {
		_ = stmt.Close()
		return err
	}
	err = stmt.Exec()
	_ = stmt.Close()
	if err != nil {
		removeDBFiles(dst)
		return fmt.Errorf("write %s: %w", dst, scrub(scrub(err, dstKey), srcKey))
	}
	if err := verifyCopy(dst, dstKey, want, wal); err != nil {
		removeDBFiles(dst)
		return err
	}
	return syncFile(dst)
}

func verifyCopy(dst string, key Key, want map[string]int64, wal bool) error {
	dc, err := rawOpen(dst, key, false)
	if err != nil {
		return fmt.Errorf("reopen %s: %w", dst, err)
	}
	defer dc.Close()
	var check string
	if err := scanOne(dc, "PRAGMA quick_check", &check); err != nil {
		return fmt.Errorf("check %s: %w", dst, scrub(err, key))
	}
	if check != "ok" {
		return fmt.Errorf("check %s: %.200s", dst, check)
	}
	got, err := contents(dc)
	if err != nil {
		return fmt.Errorf("read %s: %w", dst, scrub(err, key))
	}
	if err := sameContents(want, got); err != nil {
		return fmt.Errorf("verify %s: %w", dst, err)
	}
	if wal {
		var mode string
		if err := scanOne(dc, "PRAGMA journal_mode=WAL", &mode); err != nil || !strings.EqualFold(mode, "wal") {
			return fmt.Errorf("switch %s to WAL: %v (%s)", dst, scrub(err, key), mode)
		}
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	return f.Sync()
}

// swapIn replaces path with next in one rename, then overwrites and
// removes the replaced file. Every connection to path must be closed: its
// WAL must be empty, or the WAL of the old file would be replayed into the
// new one.
func swapIn(path, next string) error {
	if st, err := os.Stat(path + "-wal"); err == nil && st.Size() > 0 {
		return fmt.Errorf("%s-wal still holds data; nothing was replaced", path)
	}
	for _, s := range []string{"-wal", "-shm", "-journal"} {
		_ = os.Remove(path + s)
	}
	old := path + sufOld
	_ = os.Remove(old)
	linked := os.Link(path, old) == nil
	if err := os.Rename(next, path); err != nil {
		if linked {
			_ = os.Remove(old)
		}
		return err
	}
	keychain.SyncDir(filepath.Dir(path))
	if linked {
		return keychain.Shred(old)
	}
	return nil
}

// closeClean checkpoints and closes the only connection to path, so that no
// WAL is left behind.
func closeClean(c *sqlite3.Conn) error {
	_ = c.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return c.Close()
}

// openSecurity is Open for security.db.
func openSecurity(ctx context.Context, dir string, cfg KeyConfig) (*DB, error) {
	path := filepath.Join(dir, Security.FileName())
	src, err := ResolveKeySource(ctx, dir, cfg)
	if err != nil {
		return nil, err
	}
	lk, err := openLock(path + sufLock)
	if err != nil {
		return nil, err
	}
	if err := lk.to(ctx, lockShared, lockWait); err != nil {
		lk.close()
		return nil, busyErr(path, err)
	}
	st, err := securityState(path)
	if err != nil {
		lk.close()
		return nil, err
	}
	exclusive := st != stateEncrypted || pendingWork(path)
	if exclusive {
		if err := lk.to(ctx, lockExclusive, lockWait); err != nil {
			lk.close()
			return nil, busyErr(path, err)
		}
		if err := prepareSecurity(ctx, dir, src); err != nil {
			lk.close()
			return nil, err
		}
	}
	key, err := readKey(ctx, src, KeyFileName)
	if err != nil {
		lk.close()
		return nil, keyErr(src, path, err)
	}
	d, err := openFileWith(ctx, dir, key, src)
	if err != nil {
		lk.close()
		return nil, err
	}
	noteKeyID(path, key)
	if exclusive {
		if err := lk.to(ctx, lockShared, lockWait); err != nil {
			_ = d.Close()
			lk.close()
			return nil, busyErr(path, err)
		}
	}
	d.lock = lk
	return d, nil
}

func openFileWith(ctx context.Context, dir string, key Key, src KeySource) (*DB, error) {
	return openFile(ctx, dir, Security, key, src)
}

func busyErr(path string, err error) error {
	if errors.Is(err, errLockBusy) {
		return flmerr.New(flmerr.DBError, "%s is in use by another flm process (a running proxy or UI?) and could not be locked within %v; stop it (`flm proxy stop --all`) and retry", path, lockWait)
	}
	return flmerr.Wrap(err, flmerr.IOError, "lock %s", path)
}

// pendingWork reports leftovers of an interrupted swap or rotation.
func pendingWork(path string) bool {
	for _, s := range []string{sufRotating, sufUpgrading, sufNew, sufOld} {
		if fileExists(path + s) {
			return true
		}
	}
	return false
}

// prepareSecurity runs under the exclusive lock: it finishes or undoes an
// interrupted rotation, makes the key of a new file, encrypts a plaintext
// file, and clears leftovers.
func prepareSecurity(ctx context.Context, dir string, src KeySource) error {
	path := filepath.Join(dir, Security.FileName())
	removeStaleTemps(dir)
	if fileExists(path + sufRotating) {
		if err := recoverRotation(ctx, dir, src); err != nil {
			return err
		}
	}
	st, err := securityState(path)
	if err != nil {
		return err
	}
	switch st {
	case stateNew:
		removeDBFiles(path + sufNew)
		if _, err := keyOrNew(ctx, src); err != nil {
			return err
		}
		return nil
	case statePlain:
		return upgradePlain(ctx, dir, src)
	}
	key, err := readKey(ctx, src, KeyFileName)
	if err != nil {
		return keyErr(src, path, err)
	}
	return finishStale(ctx, dir, key)
}

// keyOrNew returns the current key, creating and storing one if there is
// none yet.
func keyOrNew(ctx context.Context, src KeySource) (Key, error) {
	k, err := readKey(ctx, src, KeyFileName)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, secret.ErrNotFound) {
		return Key{}, keyErr(src, "security.db", err)
	}
	k = NewKey()
	if err := writeKey(ctx, src, KeyFileName, k); err != nil {
		return Key{}, err
	}
	return k, nil
}

// finishStale clears what an interrupted operation left, once path is
// known to open with key: a half-built .new, the replaced file, and
// plaintext security backups of an interrupted first-time encryption.
func finishStale(ctx context.Context, dir string, key Key) error {
	path := filepath.Join(dir, Security.FileName())
	removeStaleTemps(dir)
	removeDBFiles(path + sufNew)
	// Under the exclusive lock nobody is snapshotting security.db.
	staleTemp(filepath.Join(dir, "backups"), Security, 0)
	if fileExists(path + sufOld) {
		if same(path, path+sufOld) {
			_ = os.Remove(path + sufOld)
		} else if decrypts(path, key) {
			if err := keychain.Shred(path + sufOld); err != nil {
				return flmerr.Wrap(err, flmerr.IOError, "remove the replaced %s", path)
			}
		}
	}
	if fileExists(path + sufUpgrading) {
		if _, err := reencryptBackups(ctx, filepath.Join(dir, "backups"), []Key{{}}, key); err != nil {
			return err
		}
		if err := os.Remove(path + sufUpgrading); err != nil {
			return flmerr.Wrap(err, flmerr.IOError, "finish encrypting %s", path)
		}
		keychain.SyncDir(dir)
	}
	return nil
}

// removeStaleTemps removes the temporary files keychain.WriteFileAtomic
// leaves in the data dir when a crash interrupts it: copies of a key
// (.security.key.tmp-*, .security.key.next.tmp-*), overwritten first, and
// of the rotation marker and key id record. It runs under the exclusive
// lock only, when no other process can be writing one.
func removeStaleTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !strings.Contains(n, ".tmp-") {
			continue
		}
		p := filepath.Join(dir, n)
		switch {
		case strings.HasPrefix(n, "."+KeyFileName+"."):
			_ = keychain.Shred(p)
		case strings.HasPrefix(n, "."+Security.FileName()+"."):
			_ = os.Remove(p)
		}
	}
}

func same(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

func touch(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	keychain.SyncDir(filepath.Dir(path))
	return nil
}

// upgradePlain encrypts a plaintext security.db left by an earlier version,
// then its plaintext backups.
func upgradePlain(ctx context.Context, dir string, src KeySource) error {
	path := filepath.Join(dir, Security.FileName())
	key, err := keyOrNew(ctx, src)
	if err != nil {
		return err
	}
	if err := touch(path + sufUpgrading); err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "start encrypting %s", path)
	}
	foldPlainWAL(path)
	if err := copyEncrypted(ctx, path, Key{}, path+sufNew, key, true); err != nil {
		removeDBFiles(path + sufNew)
		return encryptErr(path, err)
	}
	if err := swapIn(path, path+sufNew); err != nil {
		return encryptErr(path, err)
	}
	noteKeyID(path, key)
	return finishStale(ctx, dir, key)
}

// foldPlainWAL checkpoints a WAL that an earlier version (or a crash) left
// beside a plaintext security.db into the file, then overwrites the WAL
// before removing it: SQLite itself would truncate and delete it, leaving
// its plaintext pages in the freed blocks of the disk. The WAL is removed
// only once every frame is in the main file.
func foldPlainWAL(path string) {
	c, err := rawOpen(path, Key{}, false)
	if err != nil {
		return
	}
	var v int
	_ = scanOne(c, "PRAGMA user_version", &v) // a read opens the WAL
	// Keep the WAL file when the connection closes, so that it can be
	// overwritten; its frames are checkpointed first.
	_, _ = c.FileControl("main", sqlite3.FCNTL_PERSIST_WAL, true)
	folded := false
	if stmt, _, err := c.Prepare("PRAGMA wal_checkpoint(FULL)"); err == nil {
		if stmt.Step() {
			busy, frames, done := stmt.ColumnInt(0), stmt.ColumnInt(1), stmt.ColumnInt(2)
			folded = busy == 0 && frames == done
		}
		_ = stmt.Close()
	}
	if err := c.Close(); err != nil || !folded {
		return
	}
	_ = keychain.Shred(path + "-wal")
	_ = os.Remove(path + "-shm")
}

func encryptErr(path string, err error) error {
	if isDiskErr(path, err) {
		return diskFullErr(path, err)
	}
	return flmerr.Wrap(err, flmerr.IOError, "encrypt %s (it was left as it was)", path)
}

// reencryptBackups rewrites every security snapshot in bdir that opens with
// one of from (a zero Key = plaintext) under to, one file at a time, each
// swapped in atomically. Snapshots under other keys are left alone.
func reencryptBackups(ctx context.Context, bdir string, from []Key, to Key) (int, error) {
	ents, err := os.ReadDir(bdir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, flmerr.Wrap(err, flmerr.IOError, "read backup dir")
	}
	n := 0
	for _, e := range ents {
		p := filepath.Join(bdir, e.Name())
		switch {
		case strings.HasSuffix(e.Name(), ".db"+sufNew):
			removeDBFiles(p)
			continue
		case strings.HasSuffix(e.Name(), ".db"+sufOld):
			if live := strings.TrimSuffix(p, sufOld); !same(live, p) {
				_ = keychain.Shred(p)
			} else {
				_ = os.Remove(p)
			}
			continue
		case e.IsDir() || !strings.HasSuffix(e.Name(), ".db"):
			continue
		}
		k, ok := keyOf(p, from)
		if !ok || k == to {
			continue
		}
		if err := copyEncrypted(ctx, p, k, p+sufNew, to, false); err != nil {
			removeDBFiles(p + sufNew)
			if isDiskErr(p, err) {
				return n, diskFullErr(p, err)
			}
			return n, flmerr.Wrap(err, flmerr.IOError, "re-encrypt backup %s (it was left as it was)", p)
		}
		if err := swapIn(p, p+sufNew); err != nil {
			return n, flmerr.Wrap(err, flmerr.IOError, "re-encrypt backup %s", p)
		}
		n++
	}
	return n, nil
}

// keyOf finds which of keys opens p as a security database; a zero Key
// stands for a plaintext file.
func keyOf(p string, keys []Key) (Key, bool) {
	st, err := securityState(p)
	if err != nil || st == stateNew {
		return Key{}, false
	}
	for _, k := range keys {
		if k.IsZero() != (st == statePlain) {
			continue
		}
		if k.IsZero() {
			c, err := rawOpen(p, Key{}, true)
			if err != nil {
				continue
			}
			var id int
			err = scanOne(c, "PRAGMA application_id", &id)
			_ = c.Close()
			if err == nil && id == int(Security.appID()) {
				return k, true
			}
			continue
		}
		if decrypts(p, k) {
			return k, true
		}
	}
	return Key{}, false
}

// lockExclusive takes the exclusive lock for a key operation.
func lockExclusiveFor(ctx context.Context, path string) (*dbLock, error) {
	lk, err := openLock(path + sufLock)
	if err != nil {
		return nil, err
	}
	if err := lk.to(ctx, lockExclusive, lockWait); err != nil {
		lk.close()
		return nil, busyErr(path, err)
	}
	return lk, nil
}

// RotateResult describes a finished rotation.
type RotateResult struct {
	KeySource        KeySource `json:"key_source"`
	OldKeyID         string    `json:"old_key_id"`
	NewKeyID         string    `json:"new_key_id"`
	Snapshot         Backup    `json:"snapshot"`
	BackupsRekeyed   int       `json:"backups_reencrypted"`
	BackupsSkipped   []string  `json:"backups_under_other_keys"`
	DurationMillis   int64     `json:"duration_ms"`
	ReplacedFileGone bool      `json:"old_file_removed"`
}

// RotateKey re-encrypts security.db, and every security backup that opens
// with the current key, under a new random key, then stores it as the
// current key. It needs the file to itself (no running proxy).
func RotateKey(ctx context.Context, dir string, cfg KeyConfig, now time.Time) (RotateResult, error) {
	return rekey(ctx, dir, cfg, now, Key{})
}

// rekey rotates to next (zero = a new random key).
func rekey(ctx context.Context, dir string, cfg KeyConfig, now time.Time, next Key) (RotateResult, error) {
	path := filepath.Join(dir, Security.FileName())
	src, err := ResolveKeySource(ctx, dir, cfg)
	if err != nil {
		return RotateResult{}, err
	}
	if !src.Writable() {
		return RotateResult{}, flmerr.New(flmerr.InvalidArgument, "security.db's key comes from FLM_DB_KEY, which flm cannot change: to rotate, unset FLM_DB_KEY, import the key into a key source (`flm security import-db-key`), rotate, and export the new key")
	}
	lk, err := lockExclusiveFor(ctx, path)
	if err != nil {
		return RotateResult{}, err
	}
	defer lk.close()
	return rekeyLocked(ctx, dir, src, now, next)
}

// rekeyLocked is rekey under the exclusive lock.
func rekeyLocked(ctx context.Context, dir string, src KeySource, now time.Time, next Key) (RotateResult, error) {
	start := time.Now()
	path := filepath.Join(dir, Security.FileName())
	if err := prepareSecurity(ctx, dir, src); err != nil {
		return RotateResult{}, err
	}
	// Open (and migrate) the file once, and snapshot it: the state before
	// the rotation stays restorable.
	old, err := readKey(ctx, src, KeyFileName)
	if err != nil {
		return RotateResult{}, keyErr(src, path, err)
	}
	d, err := openFileWith(ctx, dir, old, src)
	if err != nil {
		return RotateResult{}, err
	}
	bdir := filepath.Join(dir, "backups")
	snap, err := d.autoSnapshot(ctx, bdir, now)
	_ = d.Close()
	if err != nil {
		return RotateResult{}, fmt.Errorf("snapshot before rotation: %w", err)
	}
	if c, err := rawOpen(path, old, false); err == nil {
		_ = closeClean(c)
	}
	if next.IsZero() {
		next = NewKey()
	}
	res := RotateResult{KeySource: src, OldKeyID: old.ID(), NewKeyID: next.ID(), Snapshot: snap}
	if next == old {
		res.DurationMillis = time.Since(start).Milliseconds()
		return res, nil
	}
	// The marker names the key source that holds the next key: only that
	// source can finish or undo the rotation.
	if err := keychain.WriteFileAtomic(path+sufRotating, []byte(src.Kind+"\n")); err != nil {
		return res, flmerr.Wrap(err, flmerr.IOError, "start rotation")
	}
	if err := writeKey(ctx, src, nextKeyName, next); err != nil {
		_ = os.Remove(path + sufRotating)
		return res, err
	}
	fail := func(err error) (RotateResult, error) {
		// Undo now, while the old key is known to work; what cannot be
		// undone here is undone by the next open.
		if rerr := recoverRotation(ctx, dir, src); rerr != nil {
			return res, fmt.Errorf("%w (and undoing it failed: %v; the next flm command retries)", err, rerr)
		}
		return res, err
	}
	if err := copyEncrypted(ctx, path, old, path+sufNew, next, true); err != nil {
		return fail(encryptErr(path, err))
	}
	n, err := reencryptBackups(ctx, bdir, []Key{old, {}}, next)
	if err != nil {
		return fail(err)
	}
	res.BackupsRekeyed = n
	if err := swapIn(path, path+sufNew); err != nil {
		return fail(flmerr.Wrap(err, flmerr.IOError, "replace %s", path))
	}
	if err := completeRotation(ctx, dir, src, next); err != nil {
		return res, err
	}
	res.ReplacedFileGone = !fileExists(path + sufOld)
	if list, err := ListBackups(ctx, bdir, next); err == nil {
		for _, b := range list {
			if b.Kind == Security && b.KeyMismatch {
				res.BackupsSkipped = append(res.BackupsSkipped, b.Path)
			}
		}
	}
	res.DurationMillis = time.Since(start).Milliseconds()
	return res, nil
}

// completeRotation makes next the current key once the file is under it.
func completeRotation(ctx context.Context, dir string, src KeySource, next Key) error {
	path := filepath.Join(dir, Security.FileName())
	// The file is under next now: a wrong-key error must not call it
	// damaged (undecryptable) when someone opens it with the old key.
	noteKeyID(path, next)
	if err := writeKey(ctx, src, KeyFileName, next); err != nil {
		return err
	}
	if err := src.store.Delete(ctx, nextKeyName); err != nil && !errors.Is(err, secret.ErrNotFound) {
		return keyErr(src, path, err)
	}
	if err := os.Remove(path + sufRotating); err != nil && !errors.Is(err, os.ErrNotExist) {
		return flmerr.Wrap(err, flmerr.IOError, "finish rotation")
	}
	keychain.SyncDir(dir)
	return finishStale(ctx, dir, next)
}

// recoverRotation finishes (file already under the next key) or undoes
// (file still under the current key) an interrupted rotation.
func recoverRotation(ctx context.Context, dir string, src KeySource) error {
	path := filepath.Join(dir, Security.FileName())
	bdir := filepath.Join(dir, "backups")
	if b, err := os.ReadFile(path + sufRotating); err == nil {
		if kind := strings.TrimSpace(string(b)); kind != "" && kind != src.Kind {
			return flmerr.New(flmerr.DBKeyUnavailable, "a key rotation of %s that kept its keys in the %s was interrupted; run any flm command once with --key-source %s (or FLM_DB_KEY_SOURCE=%s) to finish it. Nothing was changed", path, kind, kind, kind)
		}
	}
	next, nerr := readKey(ctx, src, nextKeyName)
	if errors.Is(nerr, secret.ErrNotFound) {
		// Interrupted before the next key was stored, or after it was
		// promoted: either way the file is under the current key.
		removeDBFiles(path + sufNew)
		if err := os.Remove(path + sufRotating); err != nil && !errors.Is(err, os.ErrNotExist) {
			return flmerr.Wrap(err, flmerr.IOError, "clear rotation marker")
		}
		return nil
	}
	if nerr != nil {
		return keyErr(src, path, nerr)
	}
	if decrypts(path, next) {
		cur, err := readKey(ctx, src, KeyFileName)
		from := []Key{{}}
		if err == nil {
			from = append(from, cur)
		}
		if _, err := reencryptBackups(ctx, bdir, from, next); err != nil {
			return err
		}
		return completeRotation(ctx, dir, src, next)
	}
	cur, err := readKey(ctx, src, KeyFileName)
	if err != nil {
		return keyErr(src, path, err)
	}
	if !decrypts(path, cur) {
		return wrongKeyErr(path, src, cur, errors.New("neither the current nor the next key of an interrupted rotation opens it"))
	}
	removeDBFiles(path + sufNew)
	noteKeyID(path, cur)
	if _, err := reencryptBackups(ctx, bdir, []Key{next}, cur); err != nil {
		return err
	}
	if err := src.store.Delete(ctx, nextKeyName); err != nil && !errors.Is(err, secret.ErrNotFound) {
		return keyErr(src, path, err)
	}
	if err := os.Remove(path + sufRotating); err != nil && !errors.Is(err, os.ErrNotExist) {
		return flmerr.Wrap(err, flmerr.IOError, "clear rotation marker")
	}
	keychain.SyncDir(dir)
	return nil
}
