package gateway

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/apikey"
)

// legacyPlain makes a key the way the prototype did: the first 32
// characters of the standard base64 of 32 random bytes.
func legacyPlain(t testing.TB) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)[:32]
}

func TestKeyRingLegacyKeys(t *testing.T) {
	now := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	// A key that uses both '+' and '/', the characters base64url lacks.
	withPlus := "ab+/CDEFGHIJKLMNOPQRSTUVWXYZ0123"
	good := legacyPlain(t)
	revokedPlain := legacyPlain(t)
	revokedAt := now.Add(-time.Hour)
	// An attacker who could get a NATIVE record whose hash is SHA-256 of a
	// legacy-shaped string (e.g. a bug in an import, or a crafted row)
	// must still not get in with that string.
	nativeTrap := legacyPlain(t)
	// And a legacy record whose hash is SHA-256 of a native-shaped string
	// must not accept that native string.
	nativeShaped := apikey.Prefix + strings.Repeat("A", apikey.KeyLen-len(apikey.Prefix))
	recs := []apikey.Record{
		{ID: "key_l1", Label: "old api", Hash: apikey.Hash(good), CreatedAt: now, Legacy: true},
		{ID: "key_l2", Label: "old api", Hash: apikey.Hash(withPlus), CreatedAt: now, Legacy: true},
		{ID: "key_l3", Label: "old api", Hash: apikey.Hash(revokedPlain), CreatedAt: now, Legacy: true, RevokedAt: &revokedAt},
		{ID: "key_trap", Label: "native", Hash: apikey.Hash(nativeTrap), CreatedAt: now},
		{ID: "key_trap2", Label: "legacy", Hash: apikey.Hash(nativeShaped), CreatedAt: now, Legacy: true},
	}
	ring := NewKeyRing(recs)
	if n := ring.Active(); n != 4 {
		t.Fatalf("Active = %d, want 4 (revoked legacy key left out)", n)
	}
	for _, tc := range []struct{ plain, id string }{{good, "key_l1"}, {withPlus, "key_l2"}} {
		rec, err := ring.Check(tc.plain, now)
		if err != nil || rec.ID != tc.id || !rec.Legacy {
			t.Fatalf("Check(legacy %s) = %+v, %v", tc.id, rec, err)
		}
	}
	refused := map[string]string{
		"revoked legacy key":                          revokedPlain,
		"legacy-shaped string vs native record":       nativeTrap,
		"native-shaped string vs legacy record":       nativeShaped,
		"base64url '-' instead of '+'":                strings.ReplaceAll(withPlus, "+", "-"),
		"base64url '_' instead of '/'":                strings.ReplaceAll(withPlus, "/", "_"),
		"padding '='":                                 good[:31] + "=",
		"31 characters":                               good[:31],
		"33 characters":                               good + "A",
		"legacy key with flm_ prefix":                 apikey.Prefix + good,
		"legacy key with trailing space":              good + " ",
		"legacy key with a NUL":                       good[:31] + "\x00",
		"legacy key with a non-ASCII letter":          good[:30] + "é",
		"empty":                                       "",
		"legacy key of a revoked record, upper-cased": strings.ToUpper(revokedPlain),
	}
	for name, plain := range refused {
		rec, err := ring.Check(plain, now)
		if !errors.Is(err, apikey.ErrInvalidKey) || rec.ID != "" {
			t.Errorf("%s: Check = %+v, %v; want ErrInvalidKey and no record", name, rec, err)
		}
	}
}

func TestLegacyWellFormed(t *testing.T) {
	for _, s := range []string{strings.Repeat("A", 32), "ab+/CDEFGHIJKLMNOPQRSTUVWXYZ0123", strings.Repeat("/", 32)} {
		if !apikey.LegacyWellFormed(s) {
			t.Errorf("LegacyWellFormed(%q) = false", s)
		}
	}
	for _, s := range []string{strings.Repeat("A", 31), strings.Repeat("A", 33), strings.Repeat("-", 32), strings.Repeat("_", 32), strings.Repeat("A", 31) + "=", strings.Repeat("A", 30) + "é"} {
		if apikey.LegacyWellFormed(s) {
			t.Errorf("LegacyWellFormed(%q) = true", s)
		}
	}
	// A native key is never legacy-shaped, and the other way round.
	if apikey.LegacyWellFormed(apikey.Prefix+strings.Repeat("A", apikey.KeyLen-4)) || apikey.WellFormed(strings.Repeat("A", 32)) {
		t.Fatal("the two shapes overlap")
	}
}

func FuzzLegacyWellFormed(f *testing.F) {
	f.Add("ab+/CDEFGHIJKLMNOPQRSTUVWXYZ0123")
	f.Add(strings.Repeat("-", 32))
	f.Fuzz(func(t *testing.T, s string) {
		if !apikey.LegacyWellFormed(s) {
			return
		}
		if len(s) != 32 || apikey.WellFormed(s) {
			t.Fatalf("accepted %q", s)
		}
		if _, err := base64.StdEncoding.DecodeString(s); err != nil {
			t.Fatalf("legacy-shaped %q is not standard base64: %v", s, err)
		}
	})
}
