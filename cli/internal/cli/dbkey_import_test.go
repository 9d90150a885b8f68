package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unjuno/flm/cli/internal/keychain"
	"github.com/unjuno/flm/cli/internal/keychain/keyringtest"
	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/proxyctl"
)

// Review finding 1, as the reviewer ran it: file key source, a key and a
// backup, security.db moved away (what the damaged-file error says to do),
// then any valid key imported. Nothing may become unreadable: the backups
// follow the imported key, and the moved file's key is kept, said so.
func TestDBKeyImportAfterSecurityDBMovedAway(t *testing.T) {
	dir := t.TempDir()
	a := createKeyWith(t, dir, "a")
	ok(t, dir, withFileKey("security", "backup", "create")...)
	moved := filepath.Join(t.TempDir(), "security.db.damaged")
	if err := os.Rename(filepath.Join(dir, "security.db"), moved); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.txt")
	_ = os.WriteFile(other, []byte(store.NewKey().Hex()+"\n"), 0o600)

	r := ok(t, dir, withFileKey("security", "import-db-key", "--file", other)...)
	var res store.ImportResult
	r.data(t, &res)
	if res.Action != "stored" || res.BackupsReencrypted != 1 || res.ReplacedKeyFile == "" {
		t.Fatalf("import = %+v", res)
	}
	warned := false
	for _, w := range warningsOf(t, r.stdout) {
		warned = warned || (w.Code == "DB_KEY_EXPORTED" && strings.Contains(w.Message, res.ReplacedKeyFile))
	}
	if !warned {
		t.Fatalf("the replaced key file is not announced: %s", r.stdout)
	}
	var list backupList
	ok(t, dir, withFileKey("security", "backup", "list")...).data(t, &list)
	for _, b := range list.Backups {
		if b.KeyMismatch {
			t.Errorf("%s is under another key after the import", b.Path)
		}
	}
	replaced, err := store.ReadKeyFile(res.ReplacedKeyFile)
	if err != nil || !store.Decrypts(moved, replaced) {
		t.Fatalf("the moved file does not open with the kept key: %v", err)
	}
	// check points at the key kept in clear.
	var rep checkReport
	flm(t, dir, withFileKey("check")...).data(t, &rep)
	if c, found := rep.find("security_db." + filepath.Base(res.ReplacedKeyFile)); !found || c.Status != "warning" {
		t.Fatalf("check does not warn about the replaced key file: %+v", rep.Checks)
	}

	// The moved file comes back with its key.
	raw, _ := os.ReadFile(moved)
	_ = os.WriteFile(filepath.Join(dir, "security.db"), raw, 0o600)
	ok(t, dir, withFileKey("security", "import-db-key", "--file", res.ReplacedKeyFile)...)
	verifyAllWith(t, dir, store.KeyConfig{Mode: store.KeyFile}, []string{a.PlainKey})
}

func createKeyWith(t *testing.T, dir, label string) issued {
	t.Helper()
	var k issued
	ok(t, dir, withFileKey("api-keys", "create", "--label", label)...).data(t, &k)
	return k
}

// Review finding 8: `flm --key-source file proxy start` on a desktop whose
// keychain holds a stale key for the same data dir. The background proxy
// must read the key where its parent does (the file), not from the
// keychain.
func TestDBKeyProxyChildUsesTheKeySourceFlag(t *testing.T) {
	s := keyringtest.Start(t)
	dir := t.TempDir()
	env := append(s.Env(), "FLM_DB_KEY_SOURCE=")
	out, stderr, code := runFLM(t, dir, env, "--key-source", "file", "api-keys", "create", "--label", "p")
	if code != 0 {
		t.Fatal(stderr)
	}
	var k struct{ Data issued }
	_ = json.Unmarshal([]byte(out), &k)
	stale := &keychain.SecretService{Scope: dir, Getenv: s.Getenv(nil)}
	if err := stale.Put(context.Background(), store.KeyFileName, []byte(store.NewKey().Hex())); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	out, stderr, code = runFLM(t, dir, env, "--key-source", "file", "proxy", "start", "--port", fmt.Sprint(port))
	t.Cleanup(func() { runFLM(t, dir, env, "proxy", "stop", "--all") })
	if code != 0 {
		t.Fatalf("proxy start with --key-source file: exit %d %s", code, stderr)
	}
	var h struct{ Data proxyctl.Handle }
	_ = json.Unmarshal([]byte(out), &h)
	if st, _ := httpGet(t, h.Data.URLs.Local+"/v1/models", k.Data.PlainKey); st == 401 {
		t.Fatalf("the proxy refused the key: it opened security.db with another key")
	}
}
