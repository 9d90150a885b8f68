package legacy_test

// Adversarial review of `flm migrate legacy` (issue 13). A failing test is
// a finding (see the review report).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/unjuno/flm/cli/internal/legacy"
	"github.com/unjuno/flm/cli/internal/legacy/legacytest"
	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/flmerr"
)

// TestReviewUnusableAllowlistIsNotAllowAll: every legacy API restricted
// its clients (a non-empty ip_whitelist), but one entry is not something
// FLM parses (a typo, a wildcard the prototype stored). The entry is
// dropped; when nothing usable is left the mapped policy would have an
// EMPTY ip_whitelist, which in FLM means "every address". The prototype's
// listener never matched such an entry. The mapping must not widen
// access: the plan is refused (INVALID_ARGUMENT naming the API and the
// entries), and so is a whitelist that is not a JSON list at all.
func TestReviewUnusableAllowlistIsNotAllowAll(t *testing.T) {
	for _, wl := range []string{`["192.168.1.300"]`, `["192.168.1.300", "*", ""]`, `192.168.1.1`} {
		f := build(t, legacytest.Options{APIs: []legacytest.API{
			{ID: "api-1", Name: "chat", Model: "m", Port: 8081, Whitelist: wl, Keys: 1},
		}})
		snap, err := legacy.Read(context.Background(), f.Path, legacy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := legacy.BuildPlan(snap)
		if err == nil {
			t.Fatalf("whitelist %s: the only legacy API allowed no usable address; mapped policy %s, warnings %q", wl, p.Policy, p.Warnings)
		}
		if !flmerr.Is(err, flmerr.InvalidArgument) || !strings.Contains(err.Error(), "chat") || !strings.Contains(err.Error(), "192.168.1.") {
			t.Fatalf("whitelist %s: %v", wl, err)
		}
	}
	// One usable entry is enough: it is kept, the bad one listed.
	f := build(t, legacytest.Options{APIs: []legacytest.API{
		{ID: "api-1", Name: "chat", Model: "m", Port: 8081, Whitelist: `["192.168.1.300","10.1.0.0/16"]`, Keys: 1},
	}})
	p := plan(t, f, legacy.Options{})
	if !strings.Contains(string(p.Policy), `"ip_whitelist":["10.1.0.0/16"]`) {
		t.Fatalf("policy %s", p.Policy)
	}
	dropped := false
	for _, d := range p.Dropped {
		dropped = dropped || strings.Contains(d.What, "192.168.1.300")
	}
	if !dropped {
		t.Fatalf("the unusable entry is not listed as dropped: %+v", p.Dropped)
	}
}

// TestReviewLabelsFromACraftedFileAreValid: labels come from the legacy
// file. When the API's name is not a valid label the fallback is
// "legacy "+api_id, and an orphan key's label is "deleted api "+api_id —
// neither is validated, so control characters (terminal escape sequences)
// reach security.db and every `api-keys list` in a terminal.
func TestReviewLabelsFromACraftedFileAreValid(t *testing.T) {
	f := build(t, legacytest.Options{APIs: []legacytest.API{
		{ID: "api-1", Name: "chat", Model: "m", Port: 8081, Keys: 1},
	}})
	evil := "x\x1b]0;pwned\x07\x1b[2J"
	execSQL(t, f.Path, `INSERT INTO apis (id, name, model, port, created_at, updated_at) VALUES ('`+evil+`', char(10), 'm', 8082, '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z');
		INSERT INTO api_keys VALUES ('k1', '`+evil+`', '`+strings.Repeat("cd", 32)+`', x'00', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')`)
	// And an orphan key whose (deleted) API id is hostile.
	db := openRW(t, f.Path)
	if _, err := db.Exec(`PRAGMA foreign_keys = off`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO api_keys VALUES ('k2', 'gone` + "\x1b[31m" + `', '` + strings.Repeat("ab", 32) + `', x'00', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	snap, err := legacy.Read(context.Background(), f.Path, legacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := legacy.BuildPlan(snap)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range p.Keys {
		if _, err := apikey.ValidateLabel(k.Label); err != nil {
			t.Errorf("key %s gets label %q: %v", k.LegacyID, k.Label, err)
		}
	}
}

// TestReviewNativeShapedHashStaysLegacy records a check that holds: a
// crafted file whose key_hash is the SHA-256 of a native-shaped string is
// imported as a legacy record, and the KeyRing (core/gateway) only looks
// legacy records up for 32-character legacy strings — so it never
// authenticates the native string. (Asserted in core/gateway; here we
// only make sure the plan marks every key Legacy.)
func TestReviewNativeShapedHashStaysLegacy(t *testing.T) {
	f := build(t, legacytest.Options{APIs: []legacytest.API{{ID: "api-1", Name: "chat", Model: "m", Port: 8081, Keys: 1}}})
	native := apikey.Prefix + strings.Repeat("A", apikey.KeyLen-len(apikey.Prefix))
	execSQL(t, f.Path, `UPDATE api_keys SET key_hash = '`+apikey.Hash(native)+`'`)
	p := plan(t, f, legacy.Options{})
	for _, r := range p.Records() {
		if !r.Legacy {
			t.Fatalf("imported record %s is not marked legacy", r.ID)
		}
	}
}

// Strings of the file are printed escaped: no ESC, BEL, bidi override or
// invalid UTF-8 reaches a terminal through the plan.
func TestSafeEscapesWhatATerminalWouldInterpret(t *testing.T) {
	for in, want := range map[string]string{
		"chat":                     "chat",
		"café 日本":                  "café 日本",
		"x\x1b[2J\x07":             `x\x1b[2J\x07`,
		"invoice\u202egpj.exe":     `invoice\u202egpj.exe`,
		"a\u2066b\u200fc":          `a\u2066b\u200fc`,
		"bad\xffutf8":              `bad\xffutf8`,
		"tab\tnl\n":                `tab\x09nl\x0a`,
		"\U000E0041 tag character": `\U000e0041 tag character`,
	} {
		if got := legacy.Safe(in); got != want {
			t.Errorf("Safe(%q) = %q, want %q", in, got, want)
		}
	}
	// A label with a bidi override is valid for apikey.ValidateLabel, but
	// not taken from a legacy file.
	f := build(t, legacytest.Options{APIs: []legacytest.API{{ID: "api-1", Name: "chat\u202e", Model: "m", Port: 8081, Keys: 1}}})
	p := plan(t, f, legacy.Options{})
	if want := "legacy " + p.Keys[0].ID; p.Keys[0].Label != want {
		t.Fatalf("label %q, want %q", p.Keys[0].Label, want)
	}
	for _, d := range p.Dropped {
		if strings.ContainsRune(d.What, '\u202e') {
			t.Fatalf("dropped entry carries the raw override: %q", d.What)
		}
	}
}

// An encrypted_key far larger than a sealed prototype key is neither
// loaded nor decrypted: that key is imported by key_hash, unverified,
// with a warning; the other keys are still verified.
func TestOversizedEncryptedKeyIsNotDecrypted(t *testing.T) {
	f := build(t, legacytest.Options{APIs: []legacytest.API{{ID: "api-1", Name: "chat", Model: "m", Port: 8081, Keys: 2}}})
	if err := f.WriteKeyFile(); err != nil {
		t.Fatal(err)
	}
	execSQL(t, f.Path, `UPDATE api_keys SET encrypted_key = zeroblob(1 << 20) WHERE id = '`+f.Keys[1].ID+`'`)
	p := plan(t, f, legacy.Options{})
	got := checks(p)
	if got[f.Keys[0].ID] != legacy.Verified || got[f.Keys[1].ID] != legacy.Unverified {
		t.Fatalf("checks = %v", got)
	}
	warned := false
	for _, w := range p.Warnings {
		warned = warned || strings.Contains(w, f.Keys[1].ID) && strings.Contains(w, "1048576 bytes")
	}
	if !warned {
		t.Fatalf("no warning for the oversized blob: %q", p.Warnings)
	}
	// Only oversized blobs: nothing to judge the AES key by, no refusal.
	execSQL(t, f.Path, `UPDATE api_keys SET encrypted_key = zeroblob(5000)`)
	p = plan(t, f, legacy.Options{})
	for id, c := range checks(p) {
		if c != legacy.Unverified {
			t.Fatalf("key %s: %s", id, c)
		}
	}
}

// The "already applied" hash covers flm.db-wal: the same flm.db with more
// rows in its WAL is another state; without a WAL it is flm.db's SHA-256.
func TestSnapshotHashCoversTheWAL(t *testing.T) {
	f := build(t, legacytest.Options{APIs: []legacytest.API{{ID: "api-1", Name: "chat", Model: "m", Port: 8081, Keys: 1}}})
	db := openRW(t, f.Path)
	for _, q := range []string{`PRAGMA journal_mode = WAL`, `PRAGMA wal_autocheckpoint = 0`, `PRAGMA wal_checkpoint(TRUNCATE)`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	before, err := legacy.Read(context.Background(), f.Path, legacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(f.Path)
	if sum := sha256.Sum256(raw); before.SHA256 != hex.EncodeToString(sum[:]) || before.WAL {
		t.Fatalf("without a WAL the hash is not flm.db's SHA-256: %s wal=%v", before.SHA256, before.WAL)
	}
	if _, err := db.Exec(`INSERT INTO api_keys VALUES ('k-wal', 'api-1', '` + strings.Repeat("ef", 32) + `', x'00', '2025-03-01T00:00:00Z', '2025-03-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.ReadFile(f.Path); !bytes.Equal(now, raw) {
		t.Fatal("the insert reached flm.db itself: the test does not isolate the WAL")
	}
	after, err := legacy.Read(context.Background(), f.Path, legacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !after.WAL || after.SHA256 == before.SHA256 || len(after.Keys) != 2 {
		t.Fatalf("with a row only in the WAL: wal=%v, same hash %v, %d keys", after.WAL, after.SHA256 == before.SHA256, len(after.Keys))
	}
}
