package cli

// Adversarial review of `flm migrate legacy apply` (issue 13). A failing
// test is a finding (see the review report).

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unjuno/flm/cli/internal/legacy/legacytest"
)

// TestReviewApplyKeepsExistingPolicy: a user who already runs FLM, with a
// policy restricting clients to their LAN and a CORS origin, migrates a
// prototype whose API had no allowlist. apply used to replace the whole
// policy document with the legacy mapping without a word: the allowlist
// and CORS origins were gone (every address could use every key).
// Now apply refuses (INVALID_ARGUMENT, showing both policies, nothing
// changed) unless --replace-policy is given, and then says what it
// replaced.
func TestReviewApplyKeepsExistingPolicy(t *testing.T) {
	dir := t.TempDir()
	mine := `{"ip_whitelist":["192.168.50.0/24"],"cors":{"allowed_origins":["https://app.example"]},"rate_limit":{"rpm":10}}`
	ok(t, dir, "security", "policy", "set", "--json", mine)
	f, err := legacytest.Build(t.TempDir(), legacytest.Options{APIs: []legacytest.API{
		{ID: "api-1", Name: "chat", Model: "m", Port: 8081, Keys: 1}, // no allowlist, no rate limit
	}})
	if err != nil {
		t.Fatal(err)
	}
	policyNow := func() string {
		var s struct {
			PolicyJSON json.RawMessage `json:"policy_json"`
		}
		ok(t, dir, "security", "policy", "show").data(t, &s)
		return string(s.PolicyJSON)
	}
	// The plan shows the current policy next to the new one.
	var pl struct {
		Install struct {
			CurrentPolicy json.RawMessage `json:"current_policy"`
			PolicyChange  string          `json:"policy_change"`
		} `json:"install"`
	}
	ok(t, dir, "migrate", "legacy", "plan", "--from", f.Path, "--out", t.TempDir()).data(t, &pl)
	if !strings.Contains(string(pl.Install.CurrentPolicy), "192.168.50.0/24") || pl.Install.PolicyChange != "needs_replace_policy" {
		t.Fatalf("plan does not show the current policy: %+v", pl.Install)
	}
	msg := fails(t, dir, 1, "INVALID_ARGUMENT", "migrate", "legacy", "apply", "--from", f.Path, "--confirm")
	if !strings.Contains(msg, "192.168.50.0/24") || !strings.Contains(msg, `"ip_whitelist":[]`) || !strings.Contains(msg, "--replace-policy") {
		t.Fatalf("the refusal does not show both policies: %s", msg)
	}
	if got := policyNow(); !strings.Contains(got, "192.168.50.0/24") || !strings.Contains(got, "https://app.example") {
		t.Fatalf("a refused apply changed the policy: %s", got)
	}
	var list keyList
	ok(t, dir, "api-keys", "list").data(t, &list)
	if len(list.APIKeys) != 0 {
		t.Fatalf("a refused apply imported keys: %+v", list.APIKeys)
	}
	// With --replace-policy: replaced, and the output shows what it was.
	r := ok(t, dir, "migrate", "legacy", "apply", "--from", f.Path, "--confirm", "--replace-policy")
	if !strings.Contains(r.stdout, "192.168.50.0/24") || !strings.Contains(r.stdout, "replaces_yours") {
		t.Fatalf("apply replaced the existing policy %s and did not say so:\n%s", mine, r.stdout)
	}
	if got := policyNow(); strings.Contains(got, "192.168.50.0/24") {
		t.Fatalf("--replace-policy did not replace the policy: %s", got)
	}
}

// TestReviewApplyKeepsExistingSettings: the same for settings: a user's
// proxy.port is overwritten by the prototype's default_port without a
// word.
func TestReviewApplyKeepsExistingSettings(t *testing.T) {
	dir := t.TempDir()
	ok(t, dir, "config", "set", "proxy.port", "9443")
	f, err := legacytest.Build(t.TempDir(), legacytest.Options{
		APIs:     []legacytest.API{{ID: "api-1", Name: "chat", Model: "m", Port: 8081, Keys: 1}},
		Settings: map[string]string{"default_port": "8090"},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := ok(t, dir, "migrate", "legacy", "apply", "--from", f.Path, "--confirm")
	var v struct{ Key, Value string }
	ok(t, dir, "config", "get", "proxy.port").data(t, &v)
	if v.Value != "9443" && !strings.Contains(r.stdout, "9443") {
		t.Fatalf("apply changed proxy.port 9443 -> %s without saying so:\n%s", v.Value, r.stdout)
	}
}

// TestReviewRecoveryDoesNotUndoLaterRevocation: an apply killed after its
// journal leaves migrations/apply.json. A process that was already running
// (flm ui, a proxy writing audit rows and certificates) checked for a
// journal only when it started, so it keeps writing security.db: here the
// user revokes a leaked key from the UI. The next CLI command "recovers"
// by restoring the pre-apply backups — and the revoked key is active
// again (and every audit row, renewed certificate and UI change since is
// gone), with only a warning. Recovery must not restore a backup over
// writes made after the journal (e.g. compare a data_version/write counter
// recorded in the journal, or undo only the apply's own rows).
func TestReviewRecoveryDoesNotUndoLaterRevocation(t *testing.T) {
	dir := t.TempDir()
	k := createKey(t, dir, "phone")
	// The state an apply killed right after writing its journal leaves.
	var made struct {
		Backups []struct {
			Path string `json:"path"`
		} `json:"backups"`
	}
	ok(t, dir, "security", "backup", "create").data(t, &made)
	var paths []string
	for _, b := range made.Backups {
		paths = append(paths, b.Path)
	}
	j, _ := json.Marshal(map[string]any{"apply_id": "req_killed", "started_at": "2026-01-01T00:00:00Z", "legacy_path": "/x/flm.db", "backups": paths})
	if err := os.MkdirAll(filepath.Join(dir, "migrations"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "migrations", "apply.json"), j, 0o600); err != nil {
		t.Fatal(err)
	}
	// A long-running process (it checked for a journal when it started,
	// before the apply) revokes the key.
	if r := flmWith(t, dir, func(a *App) { a.legacyChecked = true }, "api-keys", "revoke", k.ID); r.code != 0 {
		t.Fatalf("revoke: %+v", r)
	}
	// The next command recovers.
	r := flm(t, dir, "api-keys", "list")
	var list keyList
	r.data(t, &list)
	for _, x := range list.APIKeys {
		if x.ID == k.ID && x.RevokedAt == nil {
			t.Fatalf("the revoked key %s is active again after recovery restored the pre-apply backup:\n%s", k.ID, r.stdout)
		}
	}
	// This journal (version 1) names only backups: it is set aside for
	// the manual procedure, with a warning, and never restored.
	aside, _ := filepath.Glob(filepath.Join(dir, "migrations", "apply-*.interrupted.json"))
	if _, err := os.Stat(filepath.Join(dir, "migrations", "apply.json")); err == nil || len(aside) != 1 || !strings.Contains(r.stdout, "LEGACY_APPLY_NOT_UNDONE") {
		t.Fatalf("journal not set aside (%v) or no warning:\n%s", aside, r.stdout)
	}
}
