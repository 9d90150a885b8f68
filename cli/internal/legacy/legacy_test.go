package legacy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unjuno/flm/cli/internal/keychain"
	"github.com/unjuno/flm/cli/internal/keychain/keyringtest"
	"github.com/unjuno/flm/cli/internal/legacy"
	"github.com/unjuno/flm/cli/internal/legacy/legacytest"
	"github.com/unjuno/flm/core/flmerr"
)

func build(t *testing.T, o legacytest.Options) *legacytest.Fixture {
	t.Helper()
	f, err := legacytest.Build(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func plan(t *testing.T, f *legacytest.Fixture, o legacy.Options) *legacy.Plan {
	t.Helper()
	snap, err := legacy.Read(context.Background(), f.Path, o)
	if err != nil {
		t.Fatal(err)
	}
	p, err := legacy.BuildPlan(snap)
	if err != nil {
		t.Fatal(err)
	}
	// The plan never carries a plaintext key or the AES key.
	b, _ := json.Marshal(p)
	for _, k := range f.Keys {
		if bytes.Contains(b, []byte(k.Plain)) {
			t.Fatal("a plaintext key is in the plan")
		}
	}
	if bytes.Contains(b, f.AESKey) || bytes.Contains(b, f.KeychainValue()) {
		t.Fatal("the AES key is in the plan")
	}
	return p
}

func checks(p *legacy.Plan) map[string]string {
	out := map[string]string{}
	for _, k := range p.Keys {
		out[k.LegacyID] = k.Check
	}
	return out
}

func TestNoAESKey(t *testing.T) {
	f := build(t, legacytest.Standard())
	p := plan(t, f, legacy.Options{})
	if p.Source.AESKeySource != "none" || len(p.Keys) != len(f.Keys) {
		t.Fatalf("source %s, %d keys", p.Source.AESKeySource, len(p.Keys))
	}
	for _, k := range p.Keys {
		if k.Check != legacy.Unverified {
			t.Fatalf("key %s: %s without an AES key", k.LegacyID, k.Check)
		}
	}
	// The mapping: union of allowlists, the loosest rate for the policy
	// (each key keeps its own API's rate: chat 120, laptop 30), ports,
	// settings.
	var pol map[string]any
	_ = json.Unmarshal(p.Policy, &pol)
	wl, _ := json.Marshal(pol["ip_whitelist"])
	if string(wl) != `["127.0.0.1","10.0.0.0/8","192.168.1.0/24"]` || !strings.Contains(string(p.Policy), `"rpm":120`) {
		t.Fatalf("policy = %s", p.Policy)
	}
	for _, k := range p.Keys {
		want := map[string]int{"chat": 120, "laptop": 30}[k.Label]
		if k.RevokedAt == nil && k.RPM != want {
			t.Fatalf("key %s (%s) rpm = %d; want its API's %d", k.ID, k.Label, k.RPM, want)
		}
	}
	if len(p.Profiles) != 2 || p.Profiles[0].Config.Port != 8081 || p.Settings["proxy.port"] != "8090" || p.Settings["preferred_language"] != "ja" {
		t.Fatalf("profiles %+v settings %v", p.Profiles, p.Settings)
	}
	if len(p.Engines) != 1 || p.Engines[0].BaseURL != "http://192.168.1.5:11434" {
		t.Fatalf("engines = %+v", p.Engines)
	}
	dropped := ""
	for _, d := range p.Dropped {
		dropped += d.What + "\n"
	}
	for _, want := range []string{"user_settings.theme", "user_settings.auto_start_ollama", "engine lmstudio", "table request_logs", "table oauth_tokens"} {
		if !strings.Contains(dropped, want) {
			t.Errorf("dropped list lacks %s:\n%s", want, dropped)
		}
	}
	// The orphan key (its API deleted) is imported revoked.
	for _, k := range f.Keys {
		for _, pk := range p.Keys {
			if pk.LegacyID == k.ID && (pk.RevokedAt != nil) != k.Orphan {
				t.Errorf("key %s orphan=%v revoked=%v", k.ID, k.Orphan, pk.RevokedAt)
			}
		}
	}
}

func TestKeyFileVerifiesKeys(t *testing.T) {
	o := legacytest.Standard()
	o.MismatchKeys = 1
	f := build(t, o)
	if err := f.WriteKeyFile(); err != nil {
		t.Fatal(err)
	}
	p := plan(t, f, legacy.Options{})
	if p.Source.AESKeySource != "file" {
		t.Fatalf("AES key source %s", p.Source.AESKeySource)
	}
	c := checks(p)
	for _, k := range f.Keys {
		want := legacy.Verified
		if k.Mismatch {
			want = legacy.Mismatch
		}
		if c[k.ID] != want {
			t.Errorf("key %s: %s, want %s", k.ID, c[k.ID], want)
		}
	}
	if !strings.Contains(strings.Join(p.Warnings, "\n"), "does not hash to key_hash") {
		t.Fatalf("mismatch not reported: %v", p.Warnings)
	}
}

func TestKeychainVerifiesKeys(t *testing.T) {
	sess := keyringtest.Start(t)
	f := build(t, legacytest.Standard())
	ss := &keychain.SecretService{Scope: "/legacy-test", Getenv: sess.Getenv(nil)}
	if err := ss.PutGeneric(context.Background(), legacy.KeychainService, legacy.KeychainAccount, f.KeychainValue()); err != nil {
		t.Fatal(err)
	}
	p := plan(t, f, legacy.Options{Keychain: ss.GetGeneric})
	if p.Source.AESKeySource != "keychain" {
		t.Fatalf("AES key source %s", p.Source.AESKeySource)
	}
	for id, c := range checks(p) {
		if c != legacy.Verified {
			t.Errorf("key %s: %s", id, c)
		}
	}
}

func TestBadInputs(t *testing.T) {
	ctx := context.Background()
	cases := map[string]func(t *testing.T) string{
		"not sqlite": func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "flm.db")
			_ = os.WriteFile(p, bytes.Repeat([]byte("not a database "), 100), 0o600)
			return p
		},
		"truncated": func(t *testing.T) string {
			f := build(t, legacytest.Standard())
			st, _ := os.Stat(f.Path)
			_ = os.Truncate(f.Path, st.Size()/2+100)
			return f.Path
		},
		"newer schema": func(t *testing.T) string {
			o := legacytest.Standard()
			o.Migration = legacy.MaxKnownMigration + 1
			return build(t, o).Path
		},
		"unknown schema": func(t *testing.T) string {
			f := build(t, legacytest.Standard())
			execSQL(t, f.Path, `ALTER TABLE apis RENAME TO apis_v2`)
			return f.Path
		},
		"duplicate hashes": func(t *testing.T) string {
			o := legacytest.Standard()
			o.DuplicateHash = true
			return build(t, o).Path
		},
		"wrong AES key": func(t *testing.T) string {
			f := build(t, legacytest.Standard())
			_ = os.WriteFile(filepath.Join(filepath.Dir(f.Path), legacy.KeyFileName), bytes.Repeat([]byte{7}, 32), 0o600)
			return f.Path
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			path := mk(t)
			before, _ := os.ReadFile(path)
			_, err := legacy.Read(ctx, path, legacy.Options{})
			if !flmerr.Is(err, flmerr.InvalidArgument) {
				t.Fatalf("Read = %v, want INVALID_ARGUMENT", err)
			}
			t.Logf("%s: %v", name, err)
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Fatal("the legacy file changed")
			}
			if _, err := os.Stat(path + "-journal"); err == nil {
				t.Fatal("a journal was left next to the legacy file")
			}
		})
	}
}

func TestLockedFile(t *testing.T) {
	f := build(t, legacytest.Standard())
	db := openRW(t, f.Path)
	if _, err := db.Exec(`BEGIN EXCLUSIVE`); err != nil {
		t.Fatal(err)
	}
	defer db.Exec(`ROLLBACK`)
	_, err := legacy.Read(context.Background(), f.Path, legacy.Options{})
	if !flmerr.Is(err, flmerr.InvalidArgument) || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("Read of a locked file = %v", err)
	}
}
