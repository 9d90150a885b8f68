package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unjuno/flm/cli/internal/legacy"
	"github.com/unjuno/flm/cli/internal/legacy/legacytest"
	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/tools/enginefake"
)

func legacyFixture(t *testing.T) *legacytest.Fixture {
	t.Helper()
	f, err := legacytest.Build(t.TempDir(), legacytest.Standard())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.WriteKeyFile(); err != nil {
		t.Fatal(err)
	}
	return f
}

// getFrom sends GET url from the local address src with the key in header.
func getFrom(t *testing.T, src, url, header, key string) int {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", url, nil)
	switch header {
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+key)
	case "x-api-key":
		req.Header.Set("X-Api-Key", key)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestMigrateLegacyEndToEnd(t *testing.T) {
	f := legacyFixture(t)
	dir := t.TempDir()
	olla := fake(t, enginefake.Options{Kind: enginefake.Ollama, Models: []enginefake.Model{{Name: "llama3:latest"}}})
	ok(t, dir, "engines", "add", "--kind", "ollama", "--url", olla.URL(), "--id", "ollama-t")
	legacyBefore, _ := os.ReadFile(f.Path)

	out := t.TempDir()
	var pl struct {
		Plan     legacy.Plan `json:"plan"`
		PlanFile string      `json:"plan_file"`
	}
	ok(t, dir, "migrate", "legacy", "plan", "--from", filepath.Dir(f.Path), "--out", out).data(t, &pl)
	if _, err := os.Stat(pl.PlanFile); err != nil || len(pl.Plan.Keys) != len(f.Keys) {
		t.Fatalf("plan file %s: %v; %d keys", pl.PlanFile, err, len(pl.Plan.Keys))
	}
	conv := filepath.Join(t.TempDir(), "preview")
	ok(t, dir, "migrate", "legacy", "convert", "--from", f.Path, "--out", conv)
	ok(t, dir, "migrate", "legacy", "convert", "--from", f.Path, "--out", conv) // its own output: fine
	fails(t, dir, 1, "INVALID_ARGUMENT", "migrate", "legacy", "convert", "--from", f.Path, "--out", dir)
	fails(t, dir, 1, "INVALID_ARGUMENT", "migrate", "legacy", "apply", "--from", f.Path)

	if o, err := flmProc(t, dir, "migrate", "legacy", "apply", "--from", f.Path, "--confirm"); err != nil {
		t.Fatalf("apply: %v %s", err, o)
	}
	// Twice: harmless.
	var again struct {
		AlreadyApplied bool `json:"already_applied"`
	}
	ok(t, dir, "migrate", "legacy", "apply", "--from", f.Path, "--confirm").data(t, &again)
	if !again.AlreadyApplied {
		t.Fatal("second apply did not say already applied")
	}
	o, err := flmProc(t, dir, "check")
	if err != nil || !bytes.Contains(o, []byte(`"legacy.api_keys","status":"ok"`)) || !bytes.Contains(o, []byte(`"legacy.policy","status":"ok"`)) || !bytes.Contains(o, []byte(`"legacy.proxy_profiles","status":"ok"`)) {
		t.Fatalf("check after apply: %v\n%s", err, o)
	}
	var list struct {
		Keys []keyOut `json:"api_keys"`
	}
	ok(t, dir, "api-keys", "list").data(t, &list)
	if len(list.Keys) != len(f.Keys) || !list.Keys[0].Legacy {
		t.Fatalf("api-keys list = %+v", list.Keys)
	}

	h := startProxyProc(t, dir, "--port", fmt.Sprint(freePort(t)))
	url := h.URLs.Local + "/v1/models"
	for _, k := range f.Keys {
		want := http.StatusOK
		if k.Orphan {
			want = http.StatusUnauthorized
		}
		for _, hd := range []string{"bearer", "x-api-key"} {
			if got := getFrom(t, "127.0.0.1", url, hd, k.Plain); got != want {
				t.Errorf("key %s (orphan %v) via %s from 127.0.0.1 = %d, want %d", k.ID, k.Orphan, hd, got, want)
			}
		}
		if !k.Orphan {
			// 127.0.0.2 is not in the legacy allowlists: refused.
			if got := getFrom(t, "127.0.0.2", url, "bearer", k.Plain); got != http.StatusForbidden {
				t.Errorf("key %s from 127.0.0.2 = %d, want 403", k.ID, got)
			}
		}
	}
	// A base64url twin of a legacy key is not a key.
	twin := strings.NewReplacer("+", "-", "/", "_").Replace(f.Keys[0].Plain)
	if twin != f.Keys[0].Plain {
		if got := getFrom(t, "127.0.0.1", url, "bearer", twin); got != http.StatusUnauthorized {
			t.Errorf("base64url twin = %d", got)
		}
	}

	chat := exec.Command(flmBin, "--data-dir", dir, "chat", "--model", "flm://ollama-t/llama3:latest", "--prompt", "hello", "--url", h.URLs.Local)
	chat.Env = append(hermeticEnviron(), "FLM_API_KEY="+f.Keys[0].Plain)
	if o, err := chat.Output(); err != nil || len(bytes.TrimSpace(o)) == 0 {
		t.Fatalf("flm chat with a legacy key: %v %q", err, o)
	}

	// The legacy file is untouched; no plaintext key nor the AES key is
	// anywhere in the data dir (DBs, backups, logs, journal, record).
	if after, _ := os.ReadFile(f.Path); !bytes.Equal(legacyBefore, after) {
		t.Fatal("the legacy file changed")
	}
	secrets := [][]byte{f.AESKey, f.KeychainValue()}
	for _, k := range f.Keys {
		secrets = append(secrets, []byte(k.Plain))
	}
	for _, root := range []string{dir, out, conv} {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, s := range secrets {
				if bytes.Contains(b, s) {
					t.Errorf("%s holds a plaintext key or the AES key", p)
				}
			}
			return nil
		})
	}
	if logs, _ := filepath.Glob(filepath.Join(dir, "logs", "migrations", "*.log")); len(logs) == 0 {
		t.Fatal("no migration log")
	}
}

// state is what a kill can leave: the legacy keys in security.db and the
// legacy profiles in config.db.
func legacyState(t *testing.T, dir string) (keys, profiles int) {
	t.Helper()
	ctx := context.Background()
	sec, err := store.Open(ctx, dir, store.Security)
	if err != nil {
		t.Fatal(err)
	}
	defer sec.Close()
	n, err := sec.Count(ctx, "api_keys", "legacy = 1")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := store.Open(ctx, dir, store.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Close()
	m, err := cfg.Count(ctx, "proxy_profiles", "id LIKE 'legacy-%'")
	if err != nil {
		t.Fatal(err)
	}
	return int(n), int(m)
}

func TestMigrateLegacyKill9(t *testing.T) {
	f := legacyFixture(t)
	base := t.TempDir()
	if _, err := flmProc(t, base, "check"); err != nil {
		t.Fatal(err)
	}
	// One uninterrupted run times the apply.
	warm := t.TempDir()
	if err := os.CopyFS(warm, os.DirFS(base)); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if o, err := flmProc(t, warm, "migrate", "legacy", "apply", "--from", f.Path, "--confirm"); err != nil {
		t.Fatalf("apply: %v %s", err, o)
	}
	run := time.Since(t0)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
	olds, news := 0, 0
	for i := range 20 {
		dir := filepath.Join(t.TempDir(), fmt.Sprint(i))
		if err := os.CopyFS(dir, os.DirFS(base)); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(flmBin, "--data-dir", dir, "migrate", "legacy", "apply", "--from", f.Path, "--confirm")
		cmd.Env = hermeticEnviron()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(run))))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if i%2 == 1 {
			// Any command that opens the DBs finishes or undoes the
			// interrupted apply first, not only check and apply.
			if o, err := flmProc(t, dir, "api-keys", "list"); err != nil {
				t.Fatalf("run %d: api-keys list after kill: %v\n%s", i, err, o)
			}
			if _, err := os.Stat(filepath.Join(dir, "migrations", "apply.json")); err == nil {
				t.Fatalf("run %d: journal left after api-keys list", i)
			}
		}
		o, err := flmProc(t, dir, "check")
		if err != nil || bytes.Contains(o, []byte(`"status":"error"`)) {
			t.Fatalf("run %d: flm check after kill: %v\n%s", i, err, o)
		}
		keys, profiles := legacyState(t, dir)
		switch {
		case keys == 0 && profiles == 0:
			olds++
		case keys == len(f.Keys) && profiles == 2:
			news++
			if !bytes.Contains(o, []byte(`"legacy.api_keys","status":"ok"`)) {
				t.Fatalf("run %d: new state but no legacy comparison:\n%s", i, o)
			}
		default:
			t.Fatalf("run %d: a mix: %d legacy keys, %d legacy profiles", i, keys, profiles)
		}
		if _, err := os.Stat(filepath.Join(dir, "migrations", "apply.json")); err == nil {
			t.Fatalf("run %d: journal left after check", i)
		}
	}
	t.Logf("apply takes %v; after 20 kills: %d old, %d new", run, olds, news)
}

// A journal seen while an apply holds its lock is an apply in progress:
// flm check must not roll it back, and a second apply is refused.
func TestMigrateLegacyRunningApplyIsNotRolledBack(t *testing.T) {
	f := legacyFixture(t)
	dir := t.TempDir()
	ok(t, dir, "check")
	mdir := filepath.Join(dir, "migrations")
	if err := os.MkdirAll(mdir, 0o700); err != nil {
		t.Fatal(err)
	}
	release, busy, err := store.TryLock(filepath.Join(mdir, "apply.lock"))
	if err != nil || busy {
		t.Fatalf("lock: %v busy=%v", err, busy)
	}
	defer release()
	journal := []byte(`{"apply_id":"req_x","started_at":"2026-12-02T00:00:00Z","legacy_path":"x","backups":["/nonexistent/a","/nonexistent/b"]}`)
	if err := os.WriteFile(filepath.Join(mdir, "apply.json"), journal, 0o600); err != nil {
		t.Fatal(err)
	}
	r := flm(t, dir, "check")
	if !strings.Contains(r.stdout, "LEGACY_APPLY_RUNNING") {
		t.Fatalf("check while an apply runs: %+v", r)
	}
	if b, err := os.ReadFile(filepath.Join(mdir, "apply.json")); err != nil || !bytes.Equal(b, journal) {
		t.Fatalf("journal touched while the apply runs: %v %s", err, b)
	}
	if r := flm(t, dir, "migrate", "legacy", "apply", "--from", f.Path, "--confirm"); r.code == 0 || !strings.Contains(r.stderr, "another `flm migrate legacy apply` is running") {
		t.Fatalf("second apply = %+v", r)
	}
}

// An apply killed after its DB writes leaves its journal. Processes that
// were already running keep writing (a revocation, a new key, a policy
// edit). Recovery undoes only the apply's own rows: the imported keys,
// engines, profiles and settings go, the previous policy comes back only
// if nobody changed it since, and every later write stays.
func TestMigrateLegacyUndoKeepsLaterWrites(t *testing.T) {
	f := legacyFixture(t)
	mine := `{"ip_whitelist":["192.168.50.0/24"],"cors":{"allowed_origins":[]}}`
	other := `{"ip_whitelist":["10.9.0.0/16"],"cors":{"allowed_origins":[]}}`
	crash := func(step string) func(*App) {
		return func(a *App) { a.ctx = context.WithValue(a.ctx, legacyCrashAt{}, step) }
	}
	running := func(a *App) { a.legacyChecked = true } // checked for a journal before the crash
	policyNow := func(dir string) string {
		var raw struct {
			PolicyJSON json.RawMessage `json:"policy_json"`
		}
		ok(t, dir, "security", "policy", "show").data(t, &raw)
		return string(raw.PolicyJSON)
	}
	for _, laterPolicy := range []string{"", other} {
		dir := t.TempDir()
		ok(t, dir, "security", "policy", "set", "--json", mine)
		ok(t, dir, "config", "set", "proxy.port", "9443")
		phone := createKey(t, dir, "phone")
		if r := flmWith(t, dir, crash("config"), "migrate", "legacy", "apply", "--from", f.Path, "--confirm", "--replace-policy"); r.code == 0 {
			t.Fatalf("the simulated crash did not stop the apply: %+v", r)
		}
		if _, err := os.Stat(filepath.Join(dir, "migrations", "apply.json")); err != nil {
			t.Fatalf("no journal after the crash: %v", err)
		}
		if k, p := legacyState(t, dir); k != len(f.Keys) || p != 2 {
			t.Fatalf("the crashed apply wrote %d keys, %d profiles", k, p)
		}
		// The running process writes after the crash.
		for _, args := range [][]string{{"api-keys", "revoke", phone.ID}, {"api-keys", "create", "--label", "tablet"}} {
			if r := flmWith(t, dir, running, args...); r.code != 0 {
				t.Fatalf("%v: %+v", args, r)
			}
		}
		if laterPolicy != "" {
			if r := flmWith(t, dir, running, "security", "policy", "set", "--json", laterPolicy); r.code != 0 {
				t.Fatalf("policy set: %+v", r)
			}
		}
		// The next command recovers.
		r := flm(t, dir, "api-keys", "list")
		if r.code != 0 || !strings.Contains(r.stdout, "LEGACY_APPLY_ROLLED_BACK") {
			t.Fatalf("recovery: %+v", r)
		}
		var list keyList
		r.data(t, &list)
		got := map[string]bool{} // label → revoked
		for _, k := range list.APIKeys {
			got[k.Label] = k.RevokedAt != nil
		}
		if len(list.APIKeys) != 2 || !got["phone"] || got["tablet"] {
			t.Fatalf("after recovery (want phone revoked, tablet active, no legacy key): %s", r.stdout)
		}
		if k, p := legacyState(t, dir); k != 0 || p != 0 {
			t.Fatalf("after recovery: %d legacy keys, %d legacy profiles", k, p)
		}
		want := mine
		if laterPolicy != "" {
			want = laterPolicy
			if !strings.Contains(r.stdout, "changed since") {
				t.Fatalf("recovery does not say it left the changed policy: %s", r.stdout)
			}
		}
		if got := policyNow(dir); !jsonSame([]byte(got), []byte(want)) {
			t.Fatalf("policy after recovery = %s, want %s", got, want)
		}
		var port, lang struct {
			Value   string `json:"value"`
			Default bool   `json:"default"`
		}
		ok(t, dir, "config", "get", "proxy.port").data(t, &port)
		ok(t, dir, "config", "get", "preferred_language").data(t, &lang)
		if port.Value != "9443" || lang.Value != "en" {
			t.Fatalf("settings after recovery: proxy.port %+v, preferred_language %+v", port, lang)
		}
		if o := ok(t, dir, "engines", "list").stdout; strings.Contains(o, "legacy-ollama") {
			t.Fatalf("the imported engine survived recovery: %s", o)
		}
		if _, err := os.Stat(filepath.Join(dir, "migrations", "apply.json")); err == nil {
			t.Fatal("journal left after recovery")
		}
	}
}

// A legacy setting the install already has is kept and listed; one it
// has not is added.
func TestMigrateLegacyAddsOnlyUnsetSettings(t *testing.T) {
	f := legacyFixture(t)
	dir := t.TempDir()
	ok(t, dir, "config", "set", "proxy.port", "9443")
	var out struct {
		Install struct {
			SettingsAdded map[string]string `json:"settings_added"`
			SettingsKept  []keptSetting     `json:"settings_kept"`
			PolicyChange  string            `json:"policy_change"`
		} `json:"install"`
	}
	ok(t, dir, "migrate", "legacy", "apply", "--from", f.Path, "--confirm").data(t, &out)
	if out.Install.SettingsAdded["preferred_language"] != "ja" || len(out.Install.SettingsKept) != 1 || out.Install.SettingsKept[0] != (keptSetting{"proxy.port", "9443", "8090"}) || out.Install.PolicyChange != "replaces_default" {
		t.Fatalf("install = %+v", out.Install)
	}
	var port, lang struct{ Value string }
	ok(t, dir, "config", "get", "proxy.port").data(t, &port)
	ok(t, dir, "config", "get", "preferred_language").data(t, &lang)
	if port.Value != "9443" || lang.Value != "ja" {
		t.Fatalf("proxy.port %s, preferred_language %s", port.Value, lang.Value)
	}
	// Text output says so.
	dir2 := t.TempDir()
	ok(t, dir2, "config", "set", "proxy.port", "9443")
	r := ok(t, dir2, "--format", "text", "migrate", "legacy", "apply", "--from", f.Path, "--confirm")
	if !strings.Contains(r.stdout, "Setting proxy.port: kept your value 9443 (legacy 8090)") {
		t.Fatalf("text output:\n%s", r.stdout)
	}
}

// Strings of a crafted flm.db reach the terminal escaped: plan's text
// output carries no ESC, BEL or bidi override.
func TestMigrateLegacyPlanTextIsEscaped(t *testing.T) {
	f, err := legacytest.Build(t.TempDir(), legacytest.Options{APIs: []legacytest.API{
		{ID: "api-\x1b[2J", Name: "chat\x1b]0;pwned\x07", Model: "m\u202e", Port: 8081, Keys: 1},
	}, Settings: map[string]string{"theme\x1b[31m": "dark"}, Engines: [][2]string{{"ollama\u202e", "http://10.0.0.1:11434"}}})
	if err != nil {
		t.Fatal(err)
	}
	r := ok(t, t.TempDir(), "--format", "text", "migrate", "legacy", "plan", "--from", f.Path, "--out", t.TempDir())
	if strings.ContainsAny(r.stdout, "\x1b\x07\u202e") {
		t.Fatalf("plan text output carries raw control or bidi characters:\n%q", r.stdout)
	}
	if !strings.Contains(r.stdout, `\x1b`) || !strings.Contains(r.stdout, `\u202e`) {
		t.Fatalf("the crafted strings are not shown escaped:\n%s", r.stdout)
	}
}
