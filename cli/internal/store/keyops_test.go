package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/secret"
)

// backupKeysOK requires every security snapshot in dir to open with key.
func backupKeysOK(t *testing.T, dir string, key Key) int {
	t.Helper()
	list, err := ListBackups(context.Background(), filepath.Join(dir, "backups"), key)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range list {
		if b.Kind != Security {
			continue
		}
		n++
		if b.KeyMismatch {
			t.Errorf("backup %s does not open with key %s", b.Path, key.ID())
		}
	}
	return n
}

// The attack (review finding 1): with the key in the file source, the user
// moves a damaged security.db away (as the error tells them to), then
// imports some other key. The current key is the only key to the moved
// file and to every backup: the import must not make any of them
// unreadable.
func TestImportWithoutSecurityDBKeepsTheOnlyKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fileKeys := KeyConfig{Mode: KeyFile}
	d, err := Open(ctx, dir, Security, WithKeys(fileKeys))
	if err != nil {
		t.Fatal(err)
	}
	plains := seed(t, d, 3)
	if _, err := d.Snapshot(ctx, filepath.Join(dir, "backups"), time.Now(), ""); err != nil {
		t.Fatal(err)
	}
	old := d.Key()
	d.Close()
	moved := filepath.Join(t.TempDir(), "security.db.damaged")
	if err := os.Rename(filepath.Join(dir, "security.db"), moved); err != nil {
		t.Fatal(err)
	}

	other := NewKey()
	res, err := ImportKey(ctx, dir, fileKeys, other, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != "stored" || res.ReplacedKeyID != old.ID() || res.BackupsReencrypted != 1 {
		t.Fatalf("import = %+v", res)
	}
	// Every backup follows the new key.
	if n := backupKeysOK(t, dir, other); n != 1 {
		t.Fatalf("%d security backups", n)
	}
	// The moved file's key is kept, 0600, in a file import-db-key reads.
	st, err := os.Stat(res.ReplacedKeyFile)
	if err != nil || st.Mode().Perm() != 0o600 || filepath.Dir(res.ReplacedKeyFile) != dir {
		t.Fatalf("replaced key file %q: %v %v", res.ReplacedKeyFile, st, err)
	}
	kept, err := ReadKeyFile(res.ReplacedKeyFile)
	if err != nil || kept != old || !decrypts(moved, kept) {
		t.Fatalf("the replaced key file does not hold the moved file's key: %v", err)
	}

	// Putting the moved file back: the replaced key brings it back, and
	// the backups follow again.
	raw, _ := os.ReadFile(moved)
	_ = os.WriteFile(filepath.Join(dir, "security.db"), raw, 0o600)
	if _, err := Open(ctx, dir, Security, WithKeys(fileKeys)); !flmerr.Is(err, flmerr.DBKeyUnavailable) {
		t.Fatalf("open of the moved file under the imported key = %v", err)
	}
	res, err = ImportKey(ctx, dir, fileKeys, kept, time.Now())
	if err != nil || res.Action != "adopted" || res.BackupsReencrypted != 1 {
		t.Fatalf("import of the replaced key = %+v, %v", res, err)
	}
	d, err = Open(ctx, dir, Security, WithKeys(fileKeys))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	verifyKeys(t, d, plains)
	backupKeysOK(t, dir, old)
}

// Importing the same key again, or a key with nothing under the current
// one, changes no key file.
func TestImportOfTheCurrentKeyWithoutSecurityDB(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := NewKey()
	res, err := ImportKey(ctx, dir, KeyConfig{Mode: KeyFile}, key, time.Now())
	if err != nil || res.Action != "stored" || res.ReplacedKeyID != "" || res.ReplacedKeyFile != "" {
		t.Fatalf("first import = %+v, %v", res, err)
	}
	res, err = ImportKey(ctx, dir, KeyConfig{Mode: KeyFile}, key, time.Now())
	if err != nil || res.ReplacedKeyID != "" || res.ReplacedKeyFile != "" {
		t.Fatalf("second import = %+v, %v", res, err)
	}
}

// interruptedRotation leaves dir as a rotation killed after the backups
// were re-encrypted under the next key, before security.db was swapped.
func interruptedRotation(t *testing.T) (dir string, k fakeKeychain, old, next Key, plains []string) {
	t.Helper()
	ctx := context.Background()
	dir = t.TempDir()
	k = newKeychain()
	d, err := Open(ctx, dir, Security, kc(k))
	if err != nil {
		t.Fatal(err)
	}
	plains = seed(t, d, 3)
	for i := range 2 {
		if _, err := d.Snapshot(ctx, filepath.Join(dir, "backups"), time.Now().Add(time.Duration(i)*time.Second), ""); err != nil {
			t.Fatal(err)
		}
	}
	old = d.Key()
	d.Close()
	next = NewKey()
	path := filepath.Join(dir, "security.db")
	_ = os.WriteFile(path+sufRotating, []byte("keychain\n"), 0o600)
	_ = k.Put(ctx, nextKeyName, []byte(next.hex))
	if err := copyEncrypted(ctx, path, old, path+sufNew, next, true); err != nil {
		t.Fatal(err)
	}
	if n, err := reencryptBackups(ctx, filepath.Join(dir, "backups"), []Key{old}, next); err != nil || n != 2 {
		t.Fatalf("setup: %d, %v", n, err)
	}
	return dir, k, old, next, plains
}

// Review finding 2: importing the pre-rotation key after an interrupted
// rotation must not delete the next key while backups are under it.
func TestImportAfterInterruptedRotation(t *testing.T) {
	ctx := context.Background()
	dir, k, old, _, plains := interruptedRotation(t)
	res, err := ImportKey(ctx, dir, KeyConfig{Keychain: k}, old, time.Now())
	if err != nil || res.Action != "adopted" {
		t.Fatalf("import = %+v, %v", res, err)
	}
	if n := backupKeysOK(t, dir, old); n != 2 {
		t.Fatalf("%d backups", n)
	}
	path := filepath.Join(dir, "security.db")
	for _, s := range []string{sufNew, sufRotating} {
		if fileExists(path + s) {
			t.Errorf("%s left behind", s)
		}
	}
	d, err := Open(ctx, dir, Security, kc(k))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	verifyKeys(t, d, plains)
}

// Exporting after a rotation killed after the swap exports the key the
// file and its backups are under (the rotation is finished first).
func TestExportAfterInterruptedRotation(t *testing.T) {
	ctx := context.Background()
	dir, k, old, next, _ := interruptedRotation(t)
	path := filepath.Join(dir, "security.db")
	if err := swapIn(path, path+sufNew); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "k.txt")
	_, key, err := ExportKey(ctx, dir, KeyConfig{Keychain: k}, file, time.Now())
	if err != nil {
		t.Fatalf("export after an interrupted rotation = %v", err)
	}
	if key != next || key == old || !decrypts(path, key) {
		t.Fatal("the exported key is not the one security.db is under")
	}
	backupKeysOK(t, dir, key)
	if fileExists(path + sufRotating) {
		t.Fatal("the rotation was not finished")
	}
}

// Review finding 6: after a rotation, the pre-rotation key is a wrong key,
// not a sign of a damaged file.
func TestOldKeyAfterRotationIsAWrongKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k := newKeychain()
	d, err := Open(ctx, dir, Security, kc(k))
	if err != nil {
		t.Fatal(err)
	}
	seed(t, d, 1)
	old := d.Key()
	d.Close()
	res, err := RotateKey(ctx, dir, KeyConfig{Keychain: k}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, dir, Security, WithKeys(KeyConfig{EnvKey: old.Hex()}))
	if !flmerr.Is(err, flmerr.DBKeyUnavailable) || strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), "key id "+res.NewKeyID) {
		t.Fatalf("open with the pre-rotation key = %v; want DB_KEY_UNAVAILABLE naming key id %s", err, res.NewKeyID)
	}
	// Importing that key back (a rotation to it) records it too.
	if _, err := ImportKey(ctx, dir, KeyConfig{Keychain: k}, old, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, dir, Security, WithKeys(KeyConfig{EnvKey: NewKey().Hex()}))
	if !flmerr.Is(err, flmerr.DBKeyUnavailable) || !strings.Contains(err.Error(), "key id "+old.ID()) {
		t.Fatalf("open with a wrong key after the import = %v", err)
	}
}

// Review finding 9: no keychain reachable and no key file, while
// security.db is encrypted: the key is in the keychain of another session,
// and flm says so instead of calling the key lost. A keychain that does
// not answer is never a reason to use (or create) a key file.
func TestUnreachableOrHungKeychain(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k := newKeychain()
	d, err := Open(ctx, dir, Security, kc(k))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	before := checksums(t, dir)
	k.SetFail(fmt.Errorf("no D-Bus session bus: %w", secret.ErrUnavailable))
	_, err = Open(ctx, dir, Security, kc(k))
	if !flmerr.Is(err, flmerr.DBKeyUnavailable) || !strings.Contains(err.Error(), "keychain of your desktop session") ||
		!strings.Contains(err.Error(), "not damaged") || strings.Contains(err.Error(), "move "+filepath.Join(dir, "security.db")+" away") {
		t.Fatalf("open without a reachable keychain = %v", err)
	}
	sameChecksums(t, before, checksums(t, dir))

	fresh := t.TempDir()
	hung := newKeychain()
	hung.SetFail(fmt.Errorf("the Secret Service did not answer: %w", secret.ErrTimeout))
	_, err = Open(ctx, fresh, Security, kc(hung))
	if !flmerr.Is(err, flmerr.DBKeyUnavailable) || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("open with a hung keychain = %v", err)
	}
	if fileExists(keyFilePath(fresh)) || fileExists(filepath.Join(fresh, "security.db")) {
		t.Fatal("a hung keychain led to a key file or a database")
	}
	if hung.Calls > 1 {
		t.Fatalf("a keychain that does not answer was asked %d times in one open", hung.Calls)
	}
}

// Review finding 10: a crash inside an atomic file write leaves a
// temporary copy; the next exclusive operation removes it, and a copy of
// a key never outlives the key file an import retires.
func TestStaleTemporaryFilesRemoved(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := NewKey()
	temps := map[string][]byte{
		".security.key.tmp-111":          []byte(key.hex + "\n"),
		".security.key.next.tmp-222":     []byte(NewKey().hex + "\n"),
		".security.db.rotating.tmp-333":  []byte("file\n"),
		".security.db.keyid.tmp-444":     []byte(key.ID() + "\n"),
		".config.db.whatever.tmp-555":    []byte("not ours"),
		"security.key.replaced-notatemp": []byte("# not a temp"),
	}
	for n, b := range temps {
		_ = os.WriteFile(filepath.Join(dir, n), b, 0o600)
	}
	// A crash while the first key was written: nothing else exists.
	d, err := Open(ctx, dir, Security, WithKeys(KeyConfig{Mode: KeyFile}))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	for n := range temps {
		if gone := !fileExists(filepath.Join(dir, n)); gone != strings.HasPrefix(n, ".security.") {
			t.Errorf("%s: removed = %v", n, gone)
		}
	}
	// A leftover key copy appears again (a crash during a later write);
	// moving the key to the keychain removes it with security.key.
	fileKey, _ := ReadKeyFile(keyFilePath(dir))
	leftover := filepath.Join(dir, ".security.key.tmp-999")
	_ = os.WriteFile(leftover, []byte(fileKey.hex+"\n"), 0o600)
	res, err := ImportKey(ctx, dir, KeyConfig{Mode: KeyKeychain, Keychain: newKeychain()}, fileKey, time.Now())
	if err != nil || res.RemovedKeyFile == "" {
		t.Fatalf("import = %+v, %v", res, err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if bytes.Contains(b, []byte(fileKey.hex)) {
			t.Errorf("%s still holds the key after import-db-key moved it to the keychain", e.Name())
		}
	}
}

// Review finding 11: the plaintext WAL an earlier version left beside
// security.db is overwritten before it is removed, not truncated (which
// would leave its pages in the disk's free blocks). A hard link to it sees
// what happened to its blocks.
func TestPlaintextWALOverwrittenOnUpgrade(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	p, err := OpenUnencryptedForTest(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	plains := seed(t, p, 5)
	needles := attackerNeedles(t, p, plains)
	// The files as a crashed earlier version left them: the WAL still
	// holds the latest writes.
	dir := t.TempDir()
	for _, f := range []string{"security.db", "security.db-wal"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(dir, f), b, 0o600)
	}
	p.Close()
	wal, _ := os.ReadFile(filepath.Join(dir, "security.db-wal"))
	if len(wal) == 0 || !bytes.Contains(wal, []byte(policyMarker)) {
		t.Fatal("setup: the WAL does not hold the policy")
	}
	link := filepath.Join(t.TempDir(), "wal-link")
	if err := os.Link(filepath.Join(dir, "security.db-wal"), link); err != nil {
		t.Fatal(err)
	}

	d, err := Open(ctx, dir, Security, kc(newKeychain()))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	verifyKeys(t, d, plains) // the WAL's writes were folded in first
	if doc, _, _ := (Policy{d}).Get(ctx); !strings.Contains(string(doc), policyMarker) {
		t.Fatal("the policy written in the WAL was lost")
	}
	after, _ := os.ReadFile(link)
	if len(after) != len(wal) || len(bytes.Trim(after, "\x00")) != 0 {
		t.Fatalf("the old WAL's blocks were not overwritten: %d of %d bytes left, %d not zero", len(after), len(wal), len(bytes.Trim(after, "\x00")))
	}
	delete(needles, "the DB key")
	scan(t, dir, func(string) bool { return true }, needles)
}
