package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/gateway"
	"github.com/unjuno/flm/core/secret"
	"github.com/unjuno/flm/core/secret/secrettest"
	"github.com/unjuno/flm/proxy"
)

// fakeKeychain is an OS keychain in memory; SetFail plays a locked or
// absent one.
type fakeKeychain struct{ *secrettest.MemStore }

func (fakeKeychain) Name() string { return "fake keychain" }

func newKeychain() fakeKeychain { return fakeKeychain{secrettest.NewMemStore()} }

func kc(k fakeKeychain) Option { return WithKeys(KeyConfig{Keychain: k}) }

const (
	policyMarker = "policy-text-7c1f3a"
	auditMarker  = "audit-detail-9d2e55"
)

// seed fills security.db with what an attacker would look for: key hashes,
// a policy, audit rows. It returns the plaintext keys.
func seed(t *testing.T, d *DB, n int) []string {
	t.Helper()
	ctx := context.Background()
	svc := &apikey.Service{Store: APIKeys{d}}
	var plains []string
	for i := range n {
		k, err := svc.Create(ctx, fmt.Sprintf("key-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		plains = append(plains, k.Plain)
	}
	doc := `{"ip_whitelist":["203.0.113.77/32"],"cors":{"allowed_origins":[]},"x_note":"` + policyMarker + `"}`
	if err := (Policy{d}).Put(ctx, []byte(doc), time.Now()); err != nil {
		t.Fatal(err)
	}
	ev := proxy.AuditEvent{Type: "auth_failure", Severity: "medium", IP: "192.0.2.9", Endpoint: "/v1/models", Count: 1, At: time.Now(), Detail: auditMarker}
	if err := (Audit{d}).Audit(ctx, []proxy.AuditEvent{ev}); err != nil {
		t.Fatal(err)
	}
	return plains
}

// verifyKeys requires every plaintext key to verify against d.
func verifyKeys(t *testing.T, d *DB, plains []string) {
	t.Helper()
	recs, err := (APIKeys{d}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ring := gateway.NewKeyRing(recs)
	for _, p := range plains {
		if _, ok := ring.Verify(p); !ok {
			t.Fatalf("key %s… no longer verifies", p[:8])
		}
	}
}

// checksums hashes every file under dir.
func checksums(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[strings.TrimPrefix(p, dir)] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameChecksums(t *testing.T, before, after map[string]string) {
	t.Helper()
	for p, s := range before {
		if after[p] != s {
			t.Errorf("%s changed (or vanished)", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s appeared", p)
		}
	}
}

// scan fails if any file under dir whose name passes sel holds a needle.
func scan(t *testing.T, dir string, sel func(string) bool, needles map[string][]byte) int {
	t.Helper()
	files := 0
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !sel(p) {
			return err
		}
		files++
		b, _ := os.ReadFile(p)
		for what, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s contains %s", p, what)
			}
		}
		return nil
	})
	return files
}

func attackerNeedles(t *testing.T, d *DB, plains []string) map[string][]byte {
	t.Helper()
	n := map[string][]byte{
		"the SQLite header":       sqliteHeader,
		"table api_keys":          []byte("api_keys"),
		"table security_policies": []byte("security_policies"),
		"table audit_logs":        []byte("audit_logs"),
		"schema text":             []byte("CREATE TABLE"),
		"policy text":             []byte(policyMarker),
		"policy IP":               []byte("203.0.113.77"),
		"audit text":              []byte(auditMarker),
	}
	recs, err := (APIKeys{d}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		n["key hash "+r.ID] = []byte(r.Hash)
	}
	for _, p := range plains {
		n["plaintext key "+p[:8]] = []byte(p[len(apikey.Prefix):])
	}
	if !d.key.IsZero() {
		n["the DB key"] = []byte(d.key.hex)
	}
	return n
}

// The attack: copy the data dir (a backup tool, a synced folder, a stolen
// disk) and read it. Nothing of security.db is legible: not the file, not
// its WAL while flm runs, not its snapshots.
func TestSecurityDBUnreadableAtRest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k := newKeychain()
	d, err := Open(ctx, dir, Security, kc(k))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	plains := seed(t, d, 12)
	if _, err := d.Snapshot(ctx, filepath.Join(dir, "backups"), time.Now(), ""); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(d.Path + "-wal"); err != nil || st.Size() == 0 {
		t.Fatalf("no WAL content while open (%v); the scan would not cover it", err)
	}
	needles := attackerNeedles(t, d, plains)
	// While open: DB, WAL, shared memory, snapshot.
	if n := scan(t, dir, func(string) bool { return true }, needles); n < 4 {
		t.Fatalf("scanned %d files", n)
	}
	e := d.Encryption()
	if !e.Encrypted || e.Cipher != "adiantum" || e.KeySource.Kind != KeyKeychain || e.KeySource.Fallback || e.KeySource.Warning != "" {
		t.Fatalf("Encryption() = %+v", e)
	}
	d.Close()
	scan(t, dir, func(string) bool { return true }, needles)

	// And with the key, everything is there.
	d2, err := Open(ctx, dir, Security, kc(k))
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	verifyKeys(t, d2, plains)
	if doc, _, _ := (Policy{d2}).Get(ctx); !strings.Contains(string(doc), policyMarker) {
		t.Fatalf("policy after reopen = %s", doc)
	}
}

func TestKeySourceChoice(t *testing.T) {
	ctx := context.Background()
	t.Run("keychain when there is one", func(t *testing.T) {
		dir := t.TempDir()
		k := newKeychain()
		d, err := Open(ctx, dir, Security, kc(k))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if s := d.KeySource(); s.Kind != KeyKeychain || s.Warning != "" || s.Name != "keychain (fake keychain)" {
			t.Fatalf("source = %+v", s)
		}
		v, err := k.Get(ctx, KeyFileName)
		if err != nil || len(v) != 64 {
			t.Fatalf("key in keychain = %d bytes, %v", len(v), err)
		}
		if fileExists(keyFilePath(dir)) {
			t.Fatal("a key file was written although the keychain holds the key")
		}
	})
	t.Run("file fallback without a keychain, with a warning", func(t *testing.T) {
		dir := t.TempDir()
		k := newKeychain()
		k.SetFail(fmt.Errorf("no D-Bus session bus: %w", secret.ErrUnavailable))
		d, err := Open(ctx, dir, Security, kc(k))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		s := d.KeySource()
		if s.Kind != KeyFile || !s.Fallback || !strings.Contains(s.Warning, keyFilePath(dir)) || !strings.Contains(s.Warning, "no OS keychain") {
			t.Fatalf("source = %+v", s)
		}
		st, err := os.Stat(keyFilePath(dir))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v %v", st, err)
		}
		if !d.Encryption().Encrypted {
			t.Fatal("fallback must still encrypt")
		}
	})
	t.Run("a key file found beside a working keychain is used, with a warning", func(t *testing.T) {
		dir := t.TempDir()
		d, err := Open(ctx, dir, Security, WithKeys(KeyConfig{Mode: KeyFile}))
		if err != nil {
			t.Fatal(err)
		}
		d.Close()
		d, err = Open(ctx, dir, Security, kc(newKeychain()))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if s := d.KeySource(); s.Kind != KeyFile || s.Fallback || !strings.Contains(s.Warning, "although a keychain is available") {
			t.Fatalf("source = %+v", s)
		}
	})
	t.Run("a locked keychain is never a reason to fall back", func(t *testing.T) {
		dir := t.TempDir()
		k := newKeychain()
		k.SetFail(fmt.Errorf("login keyring: %w", secret.ErrLocked))
		_, err := Open(ctx, dir, Security, kc(k))
		if !flmerr.Is(err, flmerr.DBKeyUnavailable) {
			t.Fatalf("Open with a locked keychain = %v", err)
		}
		if fileExists(keyFilePath(dir)) || fileExists(filepath.Join(dir, "security.db")) {
			t.Fatal("a locked keychain led to a key file or a database")
		}
	})
	t.Run("explicit keychain without one", func(t *testing.T) {
		dir := t.TempDir()
		k := newKeychain()
		k.SetFail(secret.ErrUnavailable)
		_, err := Open(ctx, dir, Security, WithKeys(KeyConfig{Mode: KeyKeychain, Keychain: k}))
		if !flmerr.Is(err, flmerr.DBKeyUnavailable) || fileExists(keyFilePath(dir)) {
			t.Fatalf("Open(--key-source keychain) without a keychain = %v", err)
		}
	})
	t.Run("FLM_DB_KEY", func(t *testing.T) {
		dir := t.TempDir()
		key := NewKey()
		d, err := Open(ctx, dir, Security, WithKeys(KeyConfig{EnvKey: key.Hex(), Keychain: newKeychain()}))
		if err != nil {
			t.Fatal(err)
		}
		if s := d.KeySource(); s.Kind != KeyEnv || s.Writable() || d.Key() != key {
			t.Fatalf("source = %+v", s)
		}
		d.Close()
		if !decrypts(filepath.Join(dir, "security.db"), key) {
			t.Fatal("the file is not under FLM_DB_KEY")
		}
		for _, bad := range []KeyConfig{
			{EnvKey: "not-hex-" + strings.Repeat("z", 56)},
			{EnvKey: key.Hex()[:60]},
			{EnvKey: key.Hex(), Mode: KeyFile},
			{Mode: "vault"},
		} {
			_, err := Open(ctx, t.TempDir(), Security, WithKeys(bad))
			if !flmerr.Is(err, flmerr.InvalidArgument) || (len(bad.EnvKey) > 8 && strings.Contains(err.Error(), bad.EnvKey[:20])) {
				t.Errorf("Open(%+v) = %v; want INVALID_ARGUMENT that does not echo the key", bad.Mode, err)
			}
		}
	})
}

// Wrong key, no key, locked keychain, a damaged file: the documented error,
// and not one byte of the data dir changes.
func TestKeyFailuresChangeNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k := newKeychain()
	d, err := Open(ctx, dir, Security, kc(k))
	if err != nil {
		t.Fatal(err)
	}
	seed(t, d, 3)
	if _, err := d.Snapshot(ctx, filepath.Join(dir, "backups"), time.Now(), ""); err != nil {
		t.Fatal(err)
	}
	d.Close()
	before := checksums(t, dir)
	saved, _ := k.Get(ctx, KeyFileName)

	cases := []struct {
		name  string
		setup func() Option
		want  string
	}{
		{"wrong key", func() Option { return WithKeys(KeyConfig{EnvKey: NewKey().Hex()}) }, "is encrypted under key id"},
		{"key deleted from the keychain", func() Option { _ = k.Delete(ctx, KeyFileName); return kc(k) }, "import-db-key"},
		{"keychain locked", func() Option { _ = k.Put(ctx, KeyFileName, saved); k.SetFail(secret.ErrLocked); return kc(k) }, "cannot read"},
		// The key is in a keychain this session cannot reach: not damaged.
		{"no keychain, no key file", func() Option { k.SetFail(secret.ErrUnavailable); return kc(k) }, "keychain of your desktop session"},
		{"keychain does not answer", func() Option { k.SetFail(secret.ErrTimeout); return kc(k) }, "did not answer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(ctx, dir, Security, c.setup())
			if !flmerr.Is(err, flmerr.DBKeyUnavailable) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open = %v; want DB_KEY_UNAVAILABLE containing %q", err, c.want)
			}
			if bytes.Contains([]byte(err.Error()), saved) {
				t.Fatal("the error shows the key")
			}
			sameChecksums(t, before, checksums(t, dir))
		})
	}
	k.SetFail(nil)
	_ = k.Put(ctx, KeyFileName, saved)

	t.Run("damaged file", func(t *testing.T) {
		path := filepath.Join(dir, "security.db")
		b, _ := os.ReadFile(path)
		orig := bytes.Clone(b)
		for i := 100; i < 200; i++ {
			b[i] ^= 0xff
		}
		_ = os.WriteFile(path, b, 0o600)
		damaged := checksums(t, dir)
		_, err := Open(ctx, dir, Security, kc(k))
		if !flmerr.Is(err, flmerr.DBError) || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), "restore a backup") {
			t.Fatalf("Open(damaged) = %v; want DB_ERROR: the key is the file's own (key id recorded)", err)
		}
		// Without the record, a damaged file and a wrong key look the same.
		id, _ := os.ReadFile(path + sufKeyID)
		_ = os.Remove(path + sufKeyID)
		if _, err := Open(ctx, dir, Security, kc(k)); !flmerr.Is(err, flmerr.DBKeyUnavailable) || !strings.Contains(err.Error(), "or it is damaged") {
			t.Fatalf("Open(damaged, no key id) = %v", err)
		}
		_ = os.WriteFile(path+sufKeyID, id, 0o600)
		sameChecksums(t, damaged, checksums(t, dir))
		_ = os.WriteFile(path, orig, 0o600)
	})
	d, err = Open(ctx, dir, Security, kc(k))
	if err != nil {
		t.Fatalf("the right key no longer opens the file after the failed attempts: %v", err)
	}
	d.Close()
}

func TestUpgradeOfPlaintextFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bdir := filepath.Join(dir, "backups")
	plain, err := OpenUnencryptedForTest(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	plains := seed(t, plain, 20)
	if _, err := plain.Snapshot(ctx, bdir, time.Now().Add(-time.Hour), ""); err != nil {
		t.Fatal(err)
	}
	needles := attackerNeedles(t, plain, plains)
	plain.Close()
	cfg, err := Open(ctx, dir, Config)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := cfg.Snapshot(ctx, bdir, time.Now(), "")
	cfg.Close()
	if err != nil {
		t.Fatal(err)
	}

	k := newKeychain()
	d, err := Open(ctx, dir, Security, kc(k))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	verifyKeys(t, d, plains)
	needles["the DB key"] = []byte(d.key.hex)
	scan(t, dir, func(p string) bool { return !strings.Contains(p, "config") }, needles)
	for _, s := range []string{sufNew, sufOld, sufUpgrading} {
		if fileExists(d.Path + s) {
			t.Errorf("%s%s left behind", d.Path, s)
		}
	}
	list, err := ListBackups(ctx, bdir, d.Key())
	if err != nil || len(list) != 2 {
		t.Fatalf("backups after upgrade: %+v, %v", list, err)
	}
	for _, b := range list {
		if b.Kind == Security && (!b.Encrypted || b.KeyMismatch) {
			t.Errorf("security backup not encrypted under the key: %+v", b)
		}
	}
	// config.db and its backups stay plain: nothing secret in them.
	if st, _ := securityState(cb.Path); st != statePlain {
		t.Fatal("the config backup was touched")
	}
}

// The states a crash can leave during first-time encryption; the next open
// must end with the data intact, encrypted, and nothing stale.
func TestUpgradeResumesAfterCrash(t *testing.T) {
	ctx := context.Background()
	makePlain := func(t *testing.T) (string, []string) {
		dir := t.TempDir()
		p, err := OpenUnencryptedForTest(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		plains := seed(t, p, 5)
		if _, err := p.Snapshot(ctx, filepath.Join(dir, "backups"), time.Now(), ""); err != nil {
			t.Fatal(err)
		}
		p.Close()
		return dir, plains
	}
	check := func(t *testing.T, dir string, k fakeKeychain, plains []string) {
		t.Helper()
		d, err := Open(ctx, dir, Security, kc(k))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		verifyKeys(t, d, plains)
		if st, _ := securityState(d.Path); st != stateEncrypted {
			t.Fatal("not encrypted")
		}
		for _, s := range []string{sufNew, sufOld, sufUpgrading} {
			if fileExists(d.Path + s) {
				t.Errorf("%s%s left behind", d.Path, s)
			}
		}
		list, _ := ListBackups(ctx, filepath.Join(dir, "backups"), d.Key())
		for _, b := range list {
			if !b.Encrypted || b.KeyMismatch {
				t.Errorf("backup %s not encrypted under the key", b.Path)
			}
		}
	}
	t.Run("killed while writing the new file", func(t *testing.T) {
		dir, plains := makePlain(t)
		path := filepath.Join(dir, "security.db")
		k := newKeychain()
		key := NewKey()
		_ = k.Put(ctx, KeyFileName, []byte(key.hex))
		_ = touch(path + sufUpgrading)
		_ = os.WriteFile(path+sufNew, []byte("half a file"), 0o600)
		_ = os.Link(path, path+sufOld)
		check(t, dir, k, plains)
	})
	t.Run("killed after the swap", func(t *testing.T) {
		dir, plains := makePlain(t)
		path := filepath.Join(dir, "security.db")
		k := newKeychain()
		key := NewKey()
		_ = k.Put(ctx, KeyFileName, []byte(key.hex))
		_ = touch(path + sufUpgrading)
		if err := copyEncrypted(ctx, path, Key{}, path+sufNew, key, true); err != nil {
			t.Fatal(err)
		}
		_ = os.Link(path, path+sufOld)
		if err := os.Rename(path+sufNew, path); err != nil {
			t.Fatal(err)
		}
		// The plaintext original is still there, under .old, and a
		// plaintext backup too.
		if st, _ := securityState(path + sufOld); st != statePlain {
			t.Fatal("setup")
		}
		check(t, dir, k, plains)
	})
}

func TestRotateKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bdir := filepath.Join(dir, "backups")
	k := newKeychain()
	d, err := Open(ctx, dir, Security, kc(k))
	if err != nil {
		t.Fatal(err)
	}
	plains := seed(t, d, 8)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	early, err := d.Snapshot(ctx, bdir, t0, "")
	if err != nil {
		t.Fatal(err)
	}
	old := d.Key()
	d.Close()
	// A snapshot from another machine, under a key this one does not have.
	other := t.TempDir()
	od, err := Open(ctx, other, Security, kc(newKeychain()))
	if err != nil {
		t.Fatal(err)
	}
	ob, err := od.Snapshot(ctx, filepath.Join(other, "b"), t0.Add(-time.Hour), "")
	od.Close()
	if err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(bdir, filepath.Base(ob.Path))
	fb, _ := os.ReadFile(ob.Path)
	_ = os.WriteFile(foreign, fb, 0o600)

	res, err := RotateKey(ctx, dir, KeyConfig{Keychain: k}, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := k.Get(ctx, KeyFileName)
	newKey, _ := ParseKey(string(cur))
	if newKey == old || res.NewKeyID != newKey.ID() || res.OldKeyID != old.ID() || res.BackupsRekeyed != 2 || len(res.BackupsSkipped) != 1 {
		t.Fatalf("rotation result %+v", res)
	}
	if _, err := k.Get(ctx, nextKeyName); !errors.Is(err, secret.ErrNotFound) {
		t.Fatal("the next key was left in the keychain")
	}
	path := filepath.Join(dir, "security.db")
	if decrypts(path, old) || !decrypts(path, newKey) {
		t.Fatal("security.db is not under the new key alone")
	}
	for _, p := range []string{early.Path, res.Snapshot.Path} {
		if decrypts(p, old) || !decrypts(p, newKey) {
			t.Errorf("backup %s is not under the new key alone", p)
		}
	}
	if !fileExists(foreign) {
		t.Fatal("a backup under another key was removed")
	}
	for _, s := range []string{sufNew, sufOld, sufRotating} {
		if fileExists(path + s) {
			t.Errorf("%s left behind", s)
		}
	}
	d, err = Open(ctx, dir, Security, kc(k))
	if err != nil {
		t.Fatal(err)
	}
	verifyKeys(t, d, plains)
	// A second handle holds the file: rotation waits, then refuses.
	defer func(w time.Duration) { lockWait = w }(lockWait)
	lockWait = 200 * time.Millisecond
	if _, err := RotateKey(ctx, dir, KeyConfig{Keychain: k}, time.Now()); !flmerr.Is(err, flmerr.DBError) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("rotation while the file is open = %v", err)
	}
	d.Close()
	if _, err := RotateKey(ctx, dir, KeyConfig{EnvKey: newKey.Hex()}, time.Now()); !flmerr.Is(err, flmerr.InvalidArgument) {
		t.Fatalf("rotation with FLM_DB_KEY = %v", err)
	}
}

// A rotation killed at each step: the next open ends it with one key that
// opens the file and every backup.
func TestRotationRecovery(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (string, fakeKeychain, Key, Key, []string) {
		dir := t.TempDir()
		k := newKeychain()
		d, err := Open(ctx, dir, Security, kc(k))
		if err != nil {
			t.Fatal(err)
		}
		plains := seed(t, d, 4)
		for i := range 2 {
			if _, err := d.Snapshot(ctx, filepath.Join(dir, "backups"), time.Now().Add(time.Duration(i)*time.Second), ""); err != nil {
				t.Fatal(err)
			}
		}
		old := d.Key()
		d.Close()
		next := NewKey()
		_ = os.WriteFile(filepath.Join(dir, "security.db"+sufRotating), []byte("keychain\n"), 0o600)
		_ = k.Put(ctx, nextKeyName, []byte(next.hex))
		return dir, k, old, next, plains
	}
	finalKey := func(t *testing.T, dir string, k fakeKeychain, plains []string) Key {
		t.Helper()
		d, err := Open(ctx, dir, Security, kc(k))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		verifyKeys(t, d, plains)
		if _, err := k.Get(ctx, nextKeyName); !errors.Is(err, secret.ErrNotFound) {
			t.Error("the next key is still stored")
		}
		path := filepath.Join(dir, "security.db")
		for _, s := range []string{sufNew, sufOld, sufRotating} {
			if fileExists(path + s) {
				t.Errorf("%s left behind", s)
			}
		}
		list, _ := ListBackups(ctx, filepath.Join(dir, "backups"), d.Key())
		for _, b := range list {
			if b.KeyMismatch {
				t.Errorf("backup %s is not under the final key", b.Path)
			}
		}
		return d.Key()
	}
	t.Run("before the swap: rolled back", func(t *testing.T) {
		dir, k, old, next, plains := setup(t)
		path := filepath.Join(dir, "security.db")
		if err := copyEncrypted(ctx, path, old, path+sufNew, next, true); err != nil {
			t.Fatal(err)
		}
		// One backup was already re-encrypted.
		list, _ := ListBackups(ctx, filepath.Join(dir, "backups"), old)
		if err := copyEncrypted(ctx, list[0].Path, old, list[0].Path+sufNew, next, false); err != nil {
			t.Fatal(err)
		}
		if err := swapIn(list[0].Path, list[0].Path+sufNew); err != nil {
			t.Fatal(err)
		}
		if got := finalKey(t, dir, k, plains); got != old {
			t.Fatal("a rotation interrupted before the swap must keep the old key")
		}
	})
	t.Run("after the swap: rolled forward", func(t *testing.T) {
		dir, k, old, next, plains := setup(t)
		path := filepath.Join(dir, "security.db")
		if err := copyEncrypted(ctx, path, old, path+sufNew, next, true); err != nil {
			t.Fatal(err)
		}
		if _, err := reencryptBackups(ctx, filepath.Join(dir, "backups"), []Key{old}, next); err != nil {
			t.Fatal(err)
		}
		if err := swapIn(path, path+sufNew); err != nil {
			t.Fatal(err)
		}
		if got := finalKey(t, dir, k, plains); got != next {
			t.Fatal("a rotation interrupted after the swap must end under the new key")
		}
	})
	t.Run("another key source cannot finish it", func(t *testing.T) {
		dir, k, old, _, plains := setup(t)
		before := checksums(t, dir)
		if _, err := Open(ctx, dir, Security, WithKeys(KeyConfig{EnvKey: old.Hex()})); !flmerr.Is(err, flmerr.DBKeyUnavailable) || !strings.Contains(err.Error(), "--key-source keychain") {
			t.Fatalf("open with another source during a rotation = %v", err)
		}
		sameChecksums(t, before, checksums(t, dir))
		finalKey(t, dir, k, plains)
	})
	t.Run("after promoting the key", func(t *testing.T) {
		dir, k, old, next, plains := setup(t)
		_ = k.Delete(ctx, nextKeyName)
		if got := finalKey(t, dir, k, plains); got != old {
			t.Fatal("key changed")
		}
		_ = next
	})
}

func TestExportImportKey(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	a := t.TempDir()
	ka := newKeychain()
	d, err := Open(ctx, a, Security, kc(ka))
	if err != nil {
		t.Fatal(err)
	}
	plains := seed(t, d, 3)
	d.Close()
	keyFile := filepath.Join(t.TempDir(), "k.txt")
	_, key, err := ExportKey(ctx, a, KeyConfig{Keychain: ka}, keyFile, now)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(keyFile); st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", st.Mode().Perm())
	}
	if _, _, err := ExportKey(ctx, a, KeyConfig{Keychain: ka}, keyFile, now); !flmerr.Is(err, flmerr.InvalidArgument) {
		t.Fatalf("export over an existing file = %v", err)
	}
	if got, err := ReadKeyFile(keyFile); err != nil || got != key {
		t.Fatalf("ReadKeyFile = %v", err)
	}
	junk := filepath.Join(t.TempDir(), "junk")
	_ = os.WriteFile(junk, []byte("flm-db-key-v1:not-a-key-secretstuff\n"), 0o600)
	if _, err := ReadKeyFile(junk); !flmerr.Is(err, flmerr.InvalidArgument) || strings.Contains(err.Error(), "secretstuff") {
		t.Fatalf("ReadKeyFile(junk) = %v", err)
	}

	// Machine B gets a copy of the data dir, without the key.
	b := t.TempDir()
	kb := newKeychain()
	raw, _ := os.ReadFile(filepath.Join(a, "security.db"))
	_ = os.WriteFile(filepath.Join(b, "security.db"), raw, 0o600)
	if _, err := Open(ctx, b, Security, kc(kb)); !flmerr.Is(err, flmerr.DBKeyUnavailable) || !strings.Contains(err.Error(), "import-db-key") {
		t.Fatalf("open without the key = %v", err)
	}
	wrong := filepath.Join(t.TempDir(), "w.txt")
	_ = os.WriteFile(wrong, []byte(NewKey().hex+"\n"), 0o600)
	wk, _ := ReadKeyFile(wrong)
	before := checksums(t, b)
	if _, err := ImportKey(ctx, b, KeyConfig{Keychain: kb}, wk, now); !flmerr.Is(err, flmerr.DBKeyUnavailable) {
		t.Fatalf("import of a key that does not decrypt = %v", err)
	}
	sameChecksums(t, before, checksums(t, b))
	res, err := ImportKey(ctx, b, KeyConfig{Keychain: kb}, key, now)
	if err != nil || res.Action != "adopted" {
		t.Fatalf("import = %+v, %v", res, err)
	}
	d, err = Open(ctx, b, Security, kc(kb))
	if err != nil {
		t.Fatal(err)
	}
	verifyKeys(t, d, plains)
	d.Close()

	// A backup made before a rotation: restoring it needs its key back.
	bdir := filepath.Join(a, "backups")
	d, _ = Open(ctx, a, Security, kc(ka))
	oldSnap, err := d.Snapshot(ctx, bdir, now, "")
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(t.TempDir(), filepath.Base(oldSnap.Path)) // kept elsewhere, out of rotation's reach
	sb, _ := os.ReadFile(oldSnap.Path)
	_ = os.WriteFile(kept, sb, 0o600)
	if _, err := RotateKey(ctx, a, KeyConfig{Keychain: ka}, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	d, _ = Open(ctx, a, Security, kc(ka))
	_, err = Inspect(ctx, kept, d.Key())
	d.Close()
	if !flmerr.Is(err, flmerr.DBKeyUnavailable) || !strings.Contains(err.Error(), "import-db-key") {
		t.Fatalf("Inspect(backup under the old key) = %v", err)
	}
	res, err = ImportKey(ctx, a, KeyConfig{Keychain: ka}, key, now.Add(2*time.Second))
	if err != nil || res.Action != "reencrypted" {
		t.Fatalf("import of the old key = %+v, %v", res, err)
	}
	d, _ = Open(ctx, a, Security, kc(ka))
	defer d.Close()
	bk, err := Inspect(ctx, kept, d.Key())
	if err != nil {
		t.Fatalf("the old backup is still unreadable after importing its key: %v", err)
	}
	if err := d.Restore(ctx, bk); err != nil {
		t.Fatal(err)
	}
	verifyKeys(t, d, plains)
}

func TestImportIntoKeychainRetiresKeyFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, err := Open(ctx, dir, Security, WithKeys(KeyConfig{Mode: KeyFile}))
	if err != nil {
		t.Fatal(err)
	}
	key := d.Key()
	d.Close()
	k := newKeychain()
	res, err := ImportKey(ctx, dir, KeyConfig{Mode: KeyKeychain, Keychain: k}, key, time.Now())
	if err != nil || res.Action != "adopted" || res.RemovedKeyFile != keyFilePath(dir) || fileExists(keyFilePath(dir)) {
		t.Fatalf("import = %+v, %v", res, err)
	}
	d, err = Open(ctx, dir, Security, kc(k))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if s := d.KeySource(); s.Kind != KeyKeychain || s.Warning != "" {
		t.Fatalf("source after moving the key = %+v", s)
	}
}

// The key never reaches an error message, even where SQLite is handed a URI
// that carries it.
func TestKeyNeverInErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, err := Open(ctx, dir, Security, kc(newKeychain()))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	key := d.Key()
	for _, f := range []string{"%v", "%s", "%+v", "%#v", "%q"} {
		if s := fmt.Sprintf(f, key); strings.Contains(s, key.hex) {
			t.Fatalf("Sprintf(%s, key) shows the key", f)
		}
	}
	blocker := filepath.Join(dir, "file")
	_ = os.WriteFile(blocker, nil, 0o600)
	err = copyEncrypted(ctx, d.Path, key, filepath.Join(blocker, "x.db"), key, false)
	if err == nil || strings.Contains(err.Error(), key.hex) {
		t.Fatalf("copy to an impossible path = %v", err)
	}
	if _, err := d.Snapshot(ctx, blocker, time.Now(), ""); err == nil || strings.Contains(err.Error(), key.hex) {
		t.Fatalf("snapshot into a file = %v", err)
	}
	e := scrub(fmt.Errorf("open file:/x?hexkey=%s: %w", key.hex, errors.New("boom")), key)
	if strings.Contains(e.Error(), key.hex) {
		t.Fatal("scrub left the key")
	}
}

// The proxy opens security.db once; if the keychain locks or loses the key
// afterwards, the open handle keeps working, new pool connections included.
func TestOpenHandleSurvivesKeychainLoss(t *testing.T) {
	ctx := context.Background()
	k := newKeychain()
	d, err := Open(ctx, t.TempDir(), Security, kc(k))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	plains := seed(t, d, 2)
	_ = k.Delete(ctx, KeyFileName)
	k.SetFail(secret.ErrLocked)
	sdb, _ := d.gdb.DB()
	sdb.SetMaxIdleConns(0) // every query gets a fresh connection
	for range 5 {
		verifyKeys(t, d, plains)
	}
	if _, err := (&apikey.Service{Store: APIKeys{d}}).Create(ctx, "after"); err != nil {
		t.Fatalf("write after the keychain locked: %v", err)
	}
	if calls := k.Calls; calls > 4 {
		t.Fatalf("the open handle asked the keychain %d times", calls)
	}
}

func TestSnapshotBeforeMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k := newKeychain()
	d, err := Open(ctx, dir, Security, kc(k))
	if err != nil {
		t.Fatal(err)
	}
	plains := seed(t, d, 2)
	d.Close()
	saved := migrations[Security]
	defer func() { migrations[Security] = saved }()
	migrations[Security] = append(append([]migration(nil), saved...), migration{SchemaVersion(Security) + 1, "test step", []string{`CREATE TABLE test_step (x INTEGER)`}})
	d, err = Open(ctx, dir, Security, kc(k))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Version() != SchemaVersion(Security) {
		t.Fatalf("version %d", d.Version())
	}
	list, err := ListBackups(ctx, filepath.Join(dir, "backups"), d.Key())
	if err != nil || len(list) != 1 || list[0].SchemaVersion != saved[len(saved)-1].version || !list[0].Encrypted {
		t.Fatalf("snapshot before migration: %+v, %v", list, err)
	}
	verifyKeys(t, d, plains)
}
