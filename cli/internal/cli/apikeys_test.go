package cli

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/gateway"
)

// scopedKey is a key as create, list and update show it.
type scopedKey struct {
	ID          string     `json:"id"`
	Label       string     `json:"label"`
	PlainKey    string     `json:"plain_key"`
	OldKeyID    string     `json:"old_key_id"`
	CreatedAt   time.Time  `json:"created_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	Models      []string   `json:"models"`
	RPM         int        `json:"rpm"`
	ExpiresAt   *time.Time `json:"expires_at"`
	Expired     bool       `json:"expired"`
	ExpiresSoon bool       `json:"expires_soon"`
}

func listKeys(t *testing.T, dir string) map[string]scopedKey {
	t.Helper()
	var l struct {
		APIKeys []scopedKey `json:"api_keys"`
	}
	ok(t, dir, "api-keys", "list").data(t, &l)
	m := map[string]scopedKey{}
	for _, k := range l.APIKeys {
		m[k.ID] = k
	}
	return m
}

// ringOf reads the stored keys as a proxy does.
func ringOf(t *testing.T, dir string) *gateway.KeyRing {
	t.Helper()
	d, err := store.Open(context.Background(), dir, store.Security)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	recs, err := (store.APIKeys{DB: d}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return gateway.NewKeyRing(recs)
}

// backdated stores a key as if created `ago` with the given lifetime, so
// that it can already be expired.
func backdated(t *testing.T, dir, label string, ago, life time.Duration) apikey.Issued {
	t.Helper()
	d, err := store.Open(context.Background(), dir, store.Security)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	svc := &apikey.Service{Store: store.APIKeys{DB: d}, Now: func() time.Time { return time.Now().Add(-ago) }}
	iss, err := svc.CreateWith(context.Background(), apikey.CreateOptions{Label: label, ExpiresIn: life, Models: []string{"flm://llamacpp/*"}})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func near(got *time.Time, want time.Time) bool {
	return got != nil && got.Sub(want).Abs() < time.Minute
}

func TestAPIKeysScopedCreateAndList(t *testing.T) {
	dir := t.TempDir()
	var k scopedKey
	before := time.Now()
	ok(t, dir, "api-keys", "create", "--label", "kid-tablet",
		"--models", "flm://ollama/llama3*, flm://llamacpp/tiny-chat", "--models", `flm://lmstudio/a\,b`,
		"--rpm", "30", "--expires-in", "90d").data(t, &k)
	want := []string{"flm://ollama/llama3*", "flm://llamacpp/tiny-chat", "flm://lmstudio/a,b"}
	if strings.Join(k.Models, "|") != strings.Join(want, "|") || k.RPM != 30 || !near(k.ExpiresAt, before.Add(90*24*time.Hour)) || k.PlainKey == "" {
		t.Fatalf("create = %+v", k)
	}
	plain := createKey(t, dir, "laptop")

	keys := listKeys(t, dir)
	got := keys[k.ID]
	if strings.Join(got.Models, "|") != strings.Join(want, "|") || got.RPM != 30 || !got.ExpiresAt.Equal(*k.ExpiresAt) || got.Expired || got.ExpiresSoon {
		t.Fatalf("list shows %+v", got)
	}
	if p := keys[plain.ID]; p.Models != nil || p.RPM != 0 || p.ExpiresAt != nil {
		t.Fatalf("an unscoped key lists as %+v", p)
	}
	// The proxy's view of the key is the scope that was asked for.
	rec, err := ringOf(t, dir).Check(k.PlainKey, time.Now())
	if err != nil || !rec.AllowsModel("flm://ollama/llama3:8b") || !rec.AllowsModel("flm://llamacpp/tiny-chat") || rec.AllowsModel("flm://vllm/qwen") || rec.AllowsModel("flm://llamacpp/other") {
		t.Fatalf("stored key = %+v, %v", rec, err)
	}

	r := ok(t, dir, "api-keys", "list")
	text := ok(t, dir, "--format", "text", "api-keys", "list").stdout
	for _, out := range []string{r.stdout, text} {
		if strings.Contains(out, k.PlainKey[4:]) || strings.Contains(out, plain.PlainKey[4:]) || strings.Contains(out, apikey.Hash(k.PlainKey)) {
			t.Fatalf("list shows a key or hash: %s", out)
		}
	}
	for _, s := range []string{"MODELS", "RPM", "EXPIRES", "flm://ollama/llama3*,flm://llamacpp/tiny-chat", "30", "never", "all"} {
		if !strings.Contains(text, s) {
			t.Fatalf("text list lacks %q:\n%s", s, text)
		}
	}
	if c := ok(t, dir, "--format", "text", "api-keys", "create", "--label", "t", "--models", "flm://x/*").stdout; !strings.Contains(c, "models:  flm://x/*") {
		t.Fatalf("text create:\n%s", c)
	}
}

func TestAPIKeysScopeRefused(t *testing.T) {
	dir := t.TempDir()
	createKey(t, dir, "keep")
	for _, args := range [][]string{
		{"--models", "llama3"},             // bare name: scopes name their engine
		{"--models", "llama3*"},            // bare glob
		{"--models", ""},                   // empty: not "every model"
		{"--models", " , "},                // only separators
		{"--models", "flm://ollama"},       // an engine, no model
		{"--models", "flm://oll ama/x"},    // not an engine id
		{"--rpm", "-1"},                    // negative
		{"--rpm", "1000001"},               // above policy.MaxRate
		{"--rpm", "ten"},                   // not a number
		{"--expires-in", "0"},              // "never" is no flag
		{"--expires-in", "30s"},            // below a minute
		{"--expires-in", "3651d"},          // beyond ten years
		{"--expires-in", "-5d"},            // the past
		{"--expires-in", "soon"},           // not a duration
		{"--expires-in", "9999999999999d"}, // overflow
	} {
		msg := fails(t, dir, 1, "INVALID_ARGUMENT", append([]string{"api-keys", "create", "--label", "x"}, args...)...)
		if len(msg) > 400 {
			t.Errorf("%v: %d-byte message", args, len(msg))
		}
	}
	msg := fails(t, dir, 1, "INVALID_ARGUMENT", "api-keys", "create", "--label", "x", "--models", "llama3*")
	if !strings.Contains(msg, "flm://") {
		t.Errorf("a bare name's error does not show the flm:// form: %s", msg)
	}
	if n := len(listKeys(t, dir)); n != 1 {
		t.Fatalf("refused creates stored keys: %d keys", n)
	}
}

func TestAPIKeysUpdate(t *testing.T) {
	dir := t.TempDir()
	k := createKey(t, dir, "phone")
	var u scopedKey
	before := time.Now()
	ok(t, dir, "api-keys", "update", k.ID, "--models", "flm://ollama/*", "--rpm", "12", "--expires-in", "12h", "--label", "kid phone").data(t, &u)
	if u.ID != k.ID || u.Label != "kid phone" || strings.Join(u.Models, ",") != "flm://ollama/*" || u.RPM != 12 || !near(u.ExpiresAt, before.Add(12*time.Hour)) || !u.ExpiresSoon || u.PlainKey != "" {
		t.Fatalf("update = %+v", u)
	}
	// The key itself did not change, its scope did.
	rec, err := ringOf(t, dir).Check(k.PlainKey, time.Now())
	if err != nil || rec.AllowsModel("flm://vllm/qwen") || !rec.AllowsModel("flm://ollama/llama3") || rec.RPM != 12 {
		t.Fatalf("after update the key is %+v, %v", rec, err)
	}
	if got := listKeys(t, dir)[k.ID]; got.Label != "kid phone" || got.RPM != 12 || !got.ExpiresSoon {
		t.Fatalf("list after update: %+v", got)
	}

	// Partial updates leave the rest alone; the clearing flags clear.
	ok(t, dir, "api-keys", "update", k.ID, "--no-rpm").data(t, &u)
	if u.RPM != 0 || len(u.Models) != 1 || u.ExpiresAt == nil || u.Label != "kid phone" {
		t.Fatalf("--no-rpm = %+v", u)
	}
	ok(t, dir, "api-keys", "update", k.ID, "--all-models", "--no-expiry").data(t, &u)
	if u.Models != nil || u.ExpiresAt != nil || u.ExpiresSoon {
		t.Fatalf("--all-models --no-expiry = %+v", u)
	}
	if text := ok(t, dir, "--format", "text", "api-keys", "update", k.ID, "--rpm", "5").stdout; !strings.Contains(text, "rpm:     5") || !strings.Contains(text, "models:  all") {
		t.Fatalf("text update:\n%s", text)
	}

	for _, args := range [][]string{
		{}, // nothing to change
		{"--models", "flm://a/b", "--all-models"}, // contradictory
		{"--rpm", "5", "--no-rpm"},                // contradictory
		{"--expires-in", "1d", "--no-expiry"},     // contradictory
		{"--models", ""},                          // would silently widen
		{"--models", "gpt-4"},                     // bare name
		{"--rpm", "-2"},
		{"--expires-in", "1s"},
		{"--label", ""},
	} {
		fails(t, dir, 1, "INVALID_ARGUMENT", append([]string{"api-keys", "update", k.ID}, args...)...)
	}
	if got := listKeys(t, dir)[k.ID]; got.RPM != 5 || got.Models != nil || got.ExpiresAt != nil || got.Label != "kid phone" {
		t.Fatalf("refused updates changed the key: %+v", got)
	}

	fails(t, dir, 1, "API_KEY_NOT_FOUND", "api-keys", "update", "key_unknown", "--rpm", "1")
	ok(t, dir, "api-keys", "revoke", k.ID)
	// A revoked key cannot be revived by an update.
	fails(t, dir, 1, "API_KEY_NOT_FOUND", "api-keys", "update", k.ID, "--no-expiry")
	if _, err := ringOf(t, dir).Check(k.PlainKey, time.Now()); err == nil {
		t.Fatal("revoked key works after an update attempt")
	}
}

func TestAPIKeysRotateExpiring(t *testing.T) {
	dir := t.TempDir()
	day := 24 * time.Hour
	var soon, later, never scopedKey
	ok(t, dir, "api-keys", "create", "--label", "soon", "--expires-in", "3d", "--models", "flm://ollama/*", "--rpm", "7").data(t, &soon)
	ok(t, dir, "api-keys", "create", "--label", "later", "--expires-in", "30d").data(t, &later)
	ok(t, dir, "api-keys", "create", "--label", "never").data(t, &never)
	gone := backdated(t, dir, "gone", 2*day, day)

	keys := listKeys(t, dir)
	if !keys[soon.ID].ExpiresSoon || keys[soon.ID].Expired || keys[later.ID].ExpiresSoon || !keys[gone.ID].Expired || keys[gone.ID].ExpiresSoon || keys[never.ID].ExpiresSoon {
		t.Fatalf("list flags: %+v", keys)
	}
	if text := ok(t, dir, "--format", "text", "api-keys", "list").stdout; !strings.Contains(text, "expires soon") || !strings.Contains(text, "expired") {
		t.Fatalf("text list does not show expiry:\n%s", text)
	}

	var res struct {
		Rotated []scopedKey `json:"rotated"`
		Expired []scopedKey `json:"expired"`
		Failed  []any       `json:"failed"`
	}
	ok(t, dir, "api-keys", "rotate", "--expiring").data(t, &res)
	if len(res.Rotated) != 1 || res.Rotated[0].OldKeyID != soon.ID || len(res.Failed) != 0 {
		t.Fatalf("rotate --expiring = %+v", res)
	}
	if len(res.Expired) != 1 || res.Expired[0].ID != gone.ID {
		t.Fatalf("expired keys reported = %+v; want only %s", res.Expired, gone.ID)
	}
	rot := res.Rotated[0]
	if rot.PlainKey == "" || rot.Label != "soon" || strings.Join(rot.Models, ",") != "flm://ollama/*" || rot.RPM != 7 || !near(rot.ExpiresAt, time.Now().Add(3*day)) {
		t.Fatalf("replacement = %+v", rot)
	}
	ring := ringOf(t, dir)
	if _, err := ring.Check(soon.PlainKey, time.Now()); err == nil {
		t.Fatal("the rotated-out key still works")
	}
	for _, p := range []string{rot.PlainKey, later.PlainKey, never.PlainKey} {
		if _, err := ring.Check(p, time.Now()); err != nil {
			t.Fatalf("a key that should work: %v", err)
		}
	}
	// The expired key was left alone: still expired, not revoked.
	if g := listKeys(t, dir)[gone.ID]; g.RevokedAt != nil || !g.Expired {
		t.Fatalf("the expired key = %+v", g)
	}

	// A wider window reaches the 30-day key (and the new 3-day one: a key
	// that lives less than the window is replaced at every run).
	ok(t, dir, "api-keys", "rotate", "--expiring", "--within", "31d").data(t, &res)
	if len(res.Rotated) != 2 {
		t.Fatalf("--within 31d rotated %+v", res.Rotated)
	}
	ok(t, dir, "api-keys", "rotate", "--expiring", "--within", "1h").data(t, &res)
	if len(res.Rotated) != 0 {
		t.Fatalf("a 1h window rotated %+v", res.Rotated)
	}
	text := ok(t, dir, "--format", "text", "api-keys", "rotate", "--expiring", "--within", "1h").stdout
	if !strings.Contains(text, "No active key expires within 1h") || !strings.Contains(text, gone.ID) {
		t.Fatalf("text rotate --expiring:\n%s", text)
	}

	// The expired key comes back only by a deliberate rotate of its id.
	var back scopedKey
	ok(t, dir, "api-keys", "rotate", gone.ID).data(t, &back)
	if back.OldKeyID != gone.ID || !near(back.ExpiresAt, time.Now().Add(day)) || strings.Join(back.Models, ",") != "flm://llamacpp/*" {
		t.Fatalf("rotate of an expired key = %+v", back)
	}

	for _, args := range [][]string{
		{"rotate"},
		{"rotate", never.ID, "--expiring"},
		{"rotate", "--expiring", "--label", "x"},
		{"rotate", never.ID, "--within", "3d"},
		{"rotate", "--expiring", "--within", "0"},
		{"rotate", "--expiring", "--within", "forever"},
	} {
		fails(t, dir, 1, "INVALID_ARGUMENT", append([]string{"api-keys"}, args...)...)
	}
}

// Whatever create, update and rotate did, no plaintext key, nor its secret
// part, is in any file of the data dir.
func TestAPIKeysScopedNeverOnDisk(t *testing.T) {
	dir := t.TempDir()
	var plains []string
	var k scopedKey
	ok(t, dir, "api-keys", "create", "--label", "a", "--models", "flm://ollama/*", "--expires-in", "2d").data(t, &k)
	plains = append(plains, k.PlainKey)
	ok(t, dir, "api-keys", "update", k.ID, "--rpm", "3", "--models", "flm://ollama/llama3*")
	var res struct {
		Rotated []scopedKey `json:"rotated"`
	}
	ok(t, dir, "api-keys", "rotate", "--expiring").data(t, &res)
	for _, r := range res.Rotated {
		plains = append(plains, r.PlainKey)
	}
	if len(plains) != 2 {
		t.Fatalf("plains = %d", len(plains))
	}
	ok(t, dir, "security", "backup", "create")
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, p := range plains {
			if bytes.Contains(b, []byte(p[4:])) {
				return fmt.Errorf("%s holds a plaintext key", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A running proxy applies an update and a rotate --expiring before the
// command returns, and refuses an expired key.
func TestAPIKeysScopeAppliedByProxy(t *testing.T) {
	dir := t.TempDir()
	gone := backdated(t, dir, "gone", 2*24*time.Hour, 24*time.Hour)
	h := startProxyProc(t, dir, "--port", fmt.Sprint(freePort(t)))
	if code, _ := httpGet(t, h.URLs.Local+"/v1/models", gone.Plain); code != 401 {
		t.Fatalf("an expired key got %d", code)
	}
	var k struct {
		issued
		proxiesOut
	}
	flmData(t, dir, &k, "api-keys", "create", "--label", "soon", "--expires-in", "2d")
	appliedBy(t, "create", k.proxiesOut, h.ID)
	var up proxiesOut
	flmData(t, dir, &up, "api-keys", "update", k.ID, "--rpm", "100")
	appliedBy(t, "update", up, h.ID)
	if code, _ := httpGet(t, h.URLs.Local+"/v1/models", k.PlainKey); code != 200 {
		t.Fatalf("an updated key got %d", code)
	}
	var rot struct {
		Rotated []issued `json:"rotated"`
		proxiesOut
	}
	flmData(t, dir, &rot, "api-keys", "rotate", "--expiring")
	appliedBy(t, "rotate --expiring", rot.proxiesOut, h.ID)
	if len(rot.Rotated) != 1 {
		t.Fatalf("rotated %+v", rot.Rotated)
	}
	if code, _ := httpGet(t, h.URLs.Local+"/v1/models", k.PlainKey); code != 401 {
		t.Fatalf("a rotated-out key got %d", code)
	}
	if code, _ := httpGet(t, h.URLs.Local+"/v1/models", rot.Rotated[0].PlainKey); code != 200 {
		t.Fatalf("the replacement got %d", code)
	}
}
