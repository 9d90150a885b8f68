package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unjuno/flm/cli/internal/keychain"
	"github.com/unjuno/flm/cli/internal/keychain/keyringtest"
	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/gateway"
	"github.com/unjuno/flm/core/proxyctl"
)

type envelope struct {
	Data     json.RawMessage `json:"data"`
	Warnings []warning       `json:"warnings"`
}

func warningsOf(t *testing.T, stdout string) []warning {
	t.Helper()
	var e envelope
	if err := json.Unmarshal([]byte(stdout), &e); err != nil {
		t.Fatalf("not an envelope: %q", stdout)
	}
	return e.Warnings
}

// runFLM runs the real binary with extra environment variables.
func runFLM(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(flmBin, append([]string{"--data-dir", dir}, args...)...)
	cmd.Env = append(hermeticEnviron(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func errorCode(t *testing.T, stderr string) (string, string) {
	t.Helper()
	var e struct {
		Error map[string]string `json:"error"`
	}
	if err := json.Unmarshal([]byte(stderr), &e); err != nil {
		t.Fatalf("stderr is not an error object: %q", stderr)
	}
	return e.Error["code"], e.Error["message"]
}

func dirSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		s := sha256.Sum256(b)
		out[p] = hex.EncodeToString(s[:])
		return nil
	})
	return out
}

func sameSums(t *testing.T, before, after map[string]string) {
	t.Helper()
	for p, s := range before {
		if after[p] != s {
			t.Errorf("%s changed", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s appeared", p)
		}
	}
}

// noKeychain plays a machine without a keychain (no D-Bus session), whatever
// the machine running the tests has.
func noKeychain(a *App) {
	a.keychain = &keychain.SecretService{Scope: "/none", Getenv: func(string) string { return "" }}
}

// okNoKC is ok() on a machine without a keychain.
func okNoKC(t *testing.T, dir string, args ...string) result {
	t.Helper()
	r := flmWith(t, dir, noKeychain, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("flm %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// Without a keychain, the key goes to a file, and every command that opens
// security.db says so.
func TestDBKeyFallbackWarnsOnEveryCommand(t *testing.T) {
	dir := t.TempDir()
	r := okNoKC(t, dir, "api-keys", "create", "--label", "a")
	ws := warningsOf(t, r.stdout)
	if len(ws) != 1 || ws[0].Code != "DB_KEY_IN_FILE" || !strings.Contains(ws[0].Message, filepath.Join(dir, "security.key")) {
		t.Fatalf("warnings = %+v", ws)
	}
	if ws := warningsOf(t, okNoKC(t, dir, "api-keys", "list").stdout); len(ws) != 1 {
		t.Fatalf("api-keys list warnings = %+v", ws)
	}
	if ws := warningsOf(t, okNoKC(t, dir, "config", "list").stdout); len(ws) != 0 {
		t.Fatalf("config list does not open security.db, yet warned: %+v", ws)
	}
	if r := okNoKC(t, dir, "--format", "text", "api-keys", "list"); !strings.Contains(r.stdout, "warning: security.db's key is stored in the file") {
		t.Fatalf("text output without the warning: %s", r.stdout)
	}
	var chk struct {
		Status string        `json:"status"`
		Checks []checkResult `json:"checks"`
	}
	okNoKC(t, dir, "check").data(t, &chk)
	found := false
	for _, c := range chk.Checks {
		if c.Name == "security_db.encryption" {
			found = c.Status == "warning" && strings.Contains(c.Message, "encrypted (adiantum") && strings.Contains(c.Message, "fallback")
		}
	}
	if !found || chk.Status != "warning" {
		t.Fatalf("check = %+v", chk)
	}
	// An error carries the warning too, without breaking the error object.
	r2 := flmWith(t, dir, noKeychain, "api-keys", "revoke", "key_0000000000000000")
	if code, _ := r2.errCode(t); code != "API_KEY_NOT_FOUND" || !strings.Contains(r2.stderr, "DB_KEY_IN_FILE") {
		t.Fatalf("error output = %s", r2.stderr)
	}
	st, err := os.Stat(filepath.Join(dir, "security.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("security.key: %v %v", st, err)
	}
}

// The real Linux keychain: gnome-keyring on a private bus. As a desktop user
// has it: no warning, no key file, check reports the keychain; a locked
// keyring stops flm with the documented error and changes nothing.
func TestDBKeyRealKeychain(t *testing.T) {
	s := keyringtest.Start(t)
	dir := t.TempDir()
	env := append(s.Env(), "FLM_DB_KEY_SOURCE=")
	out, stderr, code := runFLM(t, dir, env, "api-keys", "create", "--label", "desk")
	if code != 0 || stderr != "" {
		t.Fatalf("create: %d %s", code, stderr)
	}
	var e struct {
		Data     issued    `json:"data"`
		Warnings []warning `json:"warnings"`
	}
	_ = json.Unmarshal([]byte(out), &e)
	if len(e.Warnings) != 0 {
		t.Fatalf("warnings with a keychain: %+v", e.Warnings)
	}
	if _, err := os.Stat(filepath.Join(dir, "security.key")); err == nil {
		t.Fatal("a key file was written although the keychain works")
	}
	out, _, code = runFLM(t, dir, env, "check")
	if code != 0 || !strings.Contains(out, `security.db is encrypted (adiantum`) || !strings.Contains(out, "keychain (Secret Service)") {
		t.Fatalf("check: %d %s", code, out)
	}
	// The same keychain in process, through the hook.
	r := flmWith(t, dir, func(a *App) {
		a.keychain = &keychain.SecretService{Scope: dir, Getenv: s.Getenv(nil)}
	}, "api-keys", "list")
	var list keyList
	r.data(t, &list)
	if r.code != 0 || len(list.APIKeys) != 1 {
		t.Fatalf("in-process list: %+v %s", r, r.stderr)
	}

	before := dirSums(t, dir)
	if err := (&keychain.SecretService{Scope: dir, Getenv: s.Getenv(nil)}).Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = runFLM(t, dir, env, "api-keys", "list")
	gotCode, msg := errorCode(t, stderr)
	if code != 1 || gotCode != "DB_KEY_UNAVAILABLE" || !strings.Contains(msg, "locked") {
		t.Fatalf("list with a locked keyring: exit %d %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "security.key")); err == nil {
		t.Fatal("a locked keyring led to a key file")
	}
	sameSums(t, before, dirSums(t, dir))
}

func TestDBKeyFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	key := store.NewKey()
	env := []string{"FLM_DB_KEY=" + key.Hex()}
	if _, stderr, code := runFLM(t, dir, env, "api-keys", "create", "--label", "c"); code != 0 {
		t.Fatal(stderr)
	}
	out, _, code := runFLM(t, dir, env, "check")
	if code != 0 || !strings.Contains(out, "FLM_DB_KEY") || strings.Contains(out, key.Hex()) {
		t.Fatalf("check with FLM_DB_KEY: %d %s", code, out)
	}
	before := dirSums(t, dir)
	_, stderr, code := runFLM(t, dir, []string{"FLM_DB_KEY=" + store.NewKey().Hex()}, "api-keys", "list")
	if c, msg := errorCode(t, stderr); code != 1 || c != "DB_KEY_UNAVAILABLE" || !strings.Contains(msg, "is encrypted under key id") {
		t.Fatalf("wrong key: %d %s", code, stderr)
	}
	_, stderr, code = runFLM(t, dir, []string{"FLM_DB_KEY=12ab"}, "api-keys", "list")
	if c, msg := errorCode(t, stderr); code != 1 || c != "INVALID_ARGUMENT" || strings.Contains(msg, "12ab") {
		t.Fatalf("malformed key: %d %s", code, stderr)
	}
	_, stderr, code = runFLM(t, dir, []string{"FLM_DB_KEY_SOURCE=file"}, "api-keys", "list")
	if c, _ := errorCode(t, stderr); code != 1 || c != "DB_KEY_UNAVAILABLE" {
		t.Fatalf("no key at all: %d %s", code, stderr)
	}
	sameSums(t, before, dirSums(t, dir))
	if _, stderr, code := runFLM(t, dir, env, "security", "rotate-db-key"); code != 1 || !strings.Contains(stderr, "FLM_DB_KEY") {
		t.Fatalf("rotate with FLM_DB_KEY: %d %s", code, stderr)
	}
}

// verifyAll opens security.db as the in-process commands do (auto: the
// keychain of the test's environment, else the key file) and requires every
// key to verify.
func verifyAll(t *testing.T, dir string, plains []string) {
	t.Helper()
	verifyAllWith(t, dir, store.KeyConfig{}, plains)
}

func verifyAllWith(t *testing.T, dir string, cfg store.KeyConfig, plains []string) {
	t.Helper()
	d, err := store.Open(context.Background(), dir, store.Security, store.WithKeys(cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	recs, err := (store.APIKeys{DB: d}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ring := gateway.NewKeyRing(recs)
	for _, p := range plains {
		if _, ok := ring.Verify(p); !ok {
			t.Fatalf("key %s… does not verify", p[:8])
		}
	}
}

func TestDBKeyRotateExportImport(t *testing.T) {
	dir := t.TempDir()
	a := createKey(t, dir, "a")
	b := createKey(t, dir, "b")
	var made struct {
		Backups []store.Backup `json:"backups"`
	}
	ok(t, dir, "security", "backup", "create").data(t, &made)
	preRotation := filepath.Join(t.TempDir(), filepath.Base(made.Backups[1].Path))
	raw, _ := os.ReadFile(made.Backups[1].Path)
	_ = os.WriteFile(preRotation, raw, 0o600) // kept outside backups/, out of the rotation's reach
	oldKey := filepath.Join(t.TempDir(), "old.txt")
	ok(t, dir, "security", "export-db-key", "--file", oldKey)

	var rot store.RotateResult
	ok(t, dir, "security", "rotate-db-key").data(t, &rot)
	if rot.BackupsRekeyed != 2 || rot.NewKeyID == rot.OldKeyID || rot.Snapshot.Path == "" {
		t.Fatalf("rotation = %+v", rot)
	}
	verifyAll(t, dir, []string{a.PlainKey, b.PlainKey})

	// A backup made under a key this machine no longer has.
	msg := fails(t, dir, 1, "DB_KEY_UNAVAILABLE", "security", "backup", "restore", "--file", preRotation)
	if !strings.Contains(msg, "import-db-key") {
		t.Fatalf("restore under a lost key: %s", msg)
	}

	// Export: a warned, 0600, never-overwritten file.
	keyFile := filepath.Join(t.TempDir(), "k.txt")
	r := ok(t, dir, "security", "export-db-key", "--file", keyFile)
	if ws := warningsOf(t, r.stdout); len(ws) == 0 || ws[len(ws)-1].Code != "DB_KEY_EXPORTED" {
		t.Fatalf("export warnings = %+v", ws)
	}
	if st, _ := os.Stat(keyFile); st.Mode().Perm() != 0o600 {
		t.Fatal("key file is not 0600")
	}
	fails(t, dir, 1, "INVALID_ARGUMENT", "security", "export-db-key", "--file", keyFile)

	// Another machine: a copy of the data dir, no key.
	other := t.TempDir()
	for _, f := range []string{"security.db", "config.db"} {
		raw, _ := os.ReadFile(filepath.Join(dir, f))
		_ = os.WriteFile(filepath.Join(other, f), raw, 0o600)
	}
	msg = fails(t, other, 1, "DB_KEY_UNAVAILABLE", "api-keys", "list")
	if !strings.Contains(msg, "import-db-key") {
		t.Fatalf("open without the key: %s", msg)
	}
	var imp store.ImportResult
	ok(t, other, "security", "import-db-key", "--file", keyFile).data(t, &imp)
	if imp.Action != "adopted" {
		t.Fatalf("import = %+v", imp)
	}
	verifyAll(t, other, []string{a.PlainKey, b.PlainKey})

	// Back on the first machine, the old backup comes back with its key.
	ok(t, dir, "security", "import-db-key", "--file", oldKey).data(t, &imp)
	if imp.Action != "reencrypted" {
		t.Fatalf("import of the old key = %+v", imp)
	}
	ok(t, dir, "security", "backup", "restore", "--file", preRotation)
	verifyAll(t, dir, []string{a.PlainKey, b.PlainKey})
	ok(t, dir, "check")
}

// One backup is one unit: restoring either file brings back config.db and
// security.db of the same moment.
func TestBackupRestoreIsOneUnit(t *testing.T) {
	dir := t.TempDir()
	a := createKey(t, dir, "kept")
	ok(t, dir, "config", "set", "proxy.port", "9100")
	var made struct {
		Backups []store.Backup `json:"backups"`
	}
	ok(t, dir, "security", "backup", "create").data(t, &made)
	if made.Backups[0].Unit != made.Backups[1].Unit || !made.Backups[1].Encrypted || made.Backups[0].Encrypted {
		t.Fatalf("backups = %+v", made.Backups)
	}
	createKey(t, dir, "later")
	ok(t, dir, "config", "set", "proxy.port", "9200")
	var res struct {
		Restored []restored `json:"restored"`
	}
	// The config file of the unit: the keys come back too.
	ok(t, dir, "security", "backup", "restore", "--file", made.Backups[0].Path).data(t, &res)
	if len(res.Restored) != 2 || res.Restored[0].Kind != store.Security {
		t.Fatalf("restored = %+v", res.Restored)
	}
	var list keyList
	ok(t, dir, "api-keys", "list").data(t, &list)
	if len(list.APIKeys) != 1 || list.APIKeys[0].ID != a.ID {
		t.Fatalf("keys after restore: %+v", list)
	}
	if r := ok(t, dir, "config", "get", "proxy.port"); !strings.Contains(r.stdout, "9100") {
		t.Fatalf("config after restore: %s", r.stdout)
	}
	var h bytes.Buffer
	code := mainWith([]string{"security", "backup", "--help"}, Env{Stdout: &h, Stderr: io.Discard, Getenv: func(string) string { return "" }}, nil)
	for _, want := range []string{"stop → restore → start", "flm proxy stop --all", "backup restore --file", "import-db-key"} {
		if !strings.Contains(h.String(), want) {
			t.Fatalf("backup --help (exit %d) lacks %q:\n%s", code, want, h.String())
		}
	}
}

// What an attacker who copies the data dir finds: no SQLite header in
// security.db or its backups, no security table name, no key hash, no
// policy text, in any file (databases, WAL, backups, logs).
func TestDBKeyByteScanOfDataDir(t *testing.T) {
	dir := t.TempDir()
	env := []string{"FLM_DB_KEY_SOURCE=file"}
	var plains []string
	for i := range 5 {
		out, stderr, code := runFLM(t, dir, env, "api-keys", "create", "--label", fmt.Sprint("k", i))
		if code != 0 {
			t.Fatal(stderr)
		}
		var e struct{ Data issued }
		_ = json.Unmarshal([]byte(out), &e)
		plains = append(plains, e.Data.PlainKey)
	}
	const marker = "203.0.113.201"
	if _, stderr, code := runFLM(t, dir, env, "security", "policy", "set", "--json", `{"ip_whitelist":["127.0.0.1","`+marker+`"],"cors":{"allowed_origins":["https://policy-marker.example"]}}`); code != 0 {
		t.Fatal(stderr)
	}
	if _, stderr, code := runFLM(t, dir, env, "security", "backup", "create"); code != 0 {
		t.Fatal(stderr)
	}
	// A proxy serves good and bad keys: logs and audit rows are written.
	port := freePort(t)
	out, stderr, code := runFLM(t, dir, env, "proxy", "start", "--port", fmt.Sprint(port))
	if code != 0 {
		t.Fatal(stderr)
	}
	var h struct{ Data proxyctl.Handle }
	_ = json.Unmarshal([]byte(out), &h)
	for _, k := range []string{plains[0], "flm_" + strings.Repeat("Z", 43)} {
		httpGet(t, h.Data.URLs.Local+"/v1/models", k)
	}
	if _, stderr, code := runFLM(t, dir, env, "proxy", "stop", "--all"); code != 0 {
		t.Fatal(stderr)
	}
	d, err := store.Open(context.Background(), dir, store.Security, store.WithKeys(store.KeyConfig{Mode: store.KeyFile}))
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := (store.APIKeys{DB: d}).List(context.Background())
	d.Close()
	needles := map[string][]byte{"policy IP": []byte(marker), "policy origin": []byte("policy-marker.example")}
	for _, r := range recs {
		needles["hash of "+r.ID] = []byte(r.Hash)
	}
	for _, p := range plains {
		needles["key "+p[:8]] = []byte(p[len(apikey.Prefix):])
	}
	securityOnly := map[string][]byte{"SQLite header": []byte("SQLite format 3\x00")}
	for _, tname := range []string{"api_keys", "security_policies", "audit_logs", "ip_blocklist", "certificates"} {
		securityOnly["table "+tname] = []byte(tname)
	}
	files := 0
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		files++
		b, _ := os.ReadFile(p)
		check := needles
		if strings.HasPrefix(filepath.Base(p), "security") {
			check = map[string][]byte{}
			for k, v := range needles {
				check[k] = v
			}
			for k, v := range securityOnly {
				check[k] = v
			}
		}
		for what, n := range check {
			if bytes.Contains(b, n) {
				t.Errorf("%s contains %s", p, what)
			}
		}
		return nil
	})
	if files < 6 {
		t.Fatalf("scanned only %d files", files)
	}
}

// killAtRandom runs flm args on copies of template, SIGKILLing it at a
// random moment, n times; after each, check inspects the dir.
func killAtRandom(t *testing.T, template string, n int, args []string, check func(t *testing.T, dir string, i int)) {
	t.Helper()
	env := append(hermeticEnviron(), "FLM_DB_KEY_SOURCE=file")
	copyDir := func() string {
		dst := t.TempDir()
		_ = filepath.WalkDir(template, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(template, p)
			if e.IsDir() {
				return os.MkdirAll(filepath.Join(dst, rel), 0o700)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
		})
		return dst
	}
	// How long the operation takes when it is not interrupted.
	probe := copyDir()
	start := time.Now()
	cmd := exec.Command(flmBin, append([]string{"--data-dir", probe}, args...)...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v %s", err, out)
	}
	run := time.Since(start)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	killed := 0
	for i := range n {
		dir := copyDir()
		cmd := exec.Command(flmBin, append([]string{"--data-dir", dir}, args...)...)
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(run))))
		if cmd.Process.Signal(syscall.SIGKILL) == nil {
			killed++
		}
		_ = cmd.Wait()
		check(t, dir, i)
		if t.Failed() {
			t.Fatalf("after kill %d", i)
		}
	}
	t.Logf("an uninterrupted run takes %v; %d of %d runs were killed", run, killed, n)
}

// afterKill: flm check is ok (the next command finishes or undoes the
// work), every key verifies, and security.db and its backups are encrypted
// under the key in the key file.
func afterKill(t *testing.T, dir string, plains []string) {
	t.Helper()
	out, stderr, code := runFLM(t, dir, []string{"FLM_DB_KEY_SOURCE=file"}, "check")
	if code != 0 || !strings.Contains(out, `"status":"warning"`) {
		t.Fatalf("check after kill: %d %s %s", code, out, stderr)
	}
	if strings.Contains(out, `"status":"error"`) {
		t.Fatalf("a check failed: %s", out)
	}
	verifyAllWith(t, dir, store.KeyConfig{Mode: store.KeyFile}, plains)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		for _, s := range []string{".new", ".old", ".upgrading", ".rotating", "security.key.next"} {
			if strings.HasSuffix(e.Name(), s) {
				t.Errorf("%s left behind", e.Name())
			}
		}
	}
	d, err := store.Open(context.Background(), dir, store.Security, store.WithKeys(store.KeyConfig{Mode: store.KeyFile}))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	list, _ := store.ListBackups(context.Background(), filepath.Join(dir, "backups"), d.Key())
	for _, b := range list {
		if b.Kind == store.Security && (!b.Encrypted || b.KeyMismatch) {
			t.Errorf("backup %s is not encrypted under the current key", b.Path)
		}
	}
}

// stateAfterKill: right after the kill, before any other flm runs, the file
// opens: plaintext (the old one) or with the key in the key file (or the
// next key of an interrupted rotation).
func stateAfterKill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "security.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(b, []byte("SQLite format 3\x00")) {
		return "plaintext"
	}
	for _, name := range []string{"security.key", "security.key.next"} {
		kb, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		k, err := store.ParseKey(string(kb))
		if err != nil {
			t.Fatalf("%s is torn: %v", name, err)
		}
		if store.Decrypts(path, k) {
			return name
		}
	}
	t.Fatal("after the kill, security.db opens with no key the key source holds")
	return ""
}

func seedPlaintext(t *testing.T, dir string, n int) []string {
	t.Helper()
	ctx := context.Background()
	d, err := store.OpenUnencryptedForTest(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	svc := &apikey.Service{Store: store.APIKeys{DB: d}}
	var plains []string
	for i := range n {
		k, err := svc.Create(ctx, fmt.Sprint("old-", i))
		if err != nil {
			t.Fatal(err)
		}
		plains = append(plains, k.Plain)
	}
	if _, err := d.Snapshot(ctx, filepath.Join(dir, "backups"), time.Now(), ""); err != nil {
		t.Fatal(err)
	}
	return plains
}

func TestSIGKILLDuringFirstEncryption(t *testing.T) {
	template := t.TempDir()
	plains := seedPlaintext(t, template, 400)
	states := map[string]int{}
	killAtRandom(t, template, 50, []string{"api-keys", "list"}, func(t *testing.T, dir string, i int) {
		states[stateAfterKill(t, dir)]++
		afterKill(t, dir, plains)
	})
	t.Logf("states right after the kills: %v", states)
}

func TestSIGKILLDuringRotation(t *testing.T) {
	template := t.TempDir()
	plains := seedPlaintext(t, template, 400)
	if _, stderr, code := runFLM(t, template, []string{"FLM_DB_KEY_SOURCE=file"}, "security", "backup", "create"); code != 0 {
		t.Fatal(stderr)
	}
	states := map[string]int{}
	killAtRandom(t, template, 50, []string{"security", "rotate-db-key"}, func(t *testing.T, dir string, i int) {
		states[stateAfterKill(t, dir)]++
		afterKill(t, dir, plains)
	})
	t.Logf("states right after the kills: %v", states)
}
