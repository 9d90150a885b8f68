package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/apikey/apikeytest"
)

func TestKeyRingCheckExpiry(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	svc := &apikey.Service{Store: apikeytest.NewMemStore(), Now: func() time.Time { return now }}
	day := 24 * time.Hour
	short, err := svc.CreateWith(ctx, apikey.CreateOptions{Label: "short", ExpiresIn: day, Models: []string{"flm://ollama/*"}, RPM: 5})
	if err != nil {
		t.Fatal(err)
	}
	forever, _ := svc.Create(ctx, "forever")
	dead, _ := svc.CreateWith(ctx, apikey.CreateOptions{Label: "revoked and expired", ExpiresIn: day})
	if _, err := svc.Revoke(ctx, dead.ID); err != nil {
		t.Fatal(err)
	}
	recs, _ := svc.List(ctx)
	ring := NewKeyRing(recs)
	expiry := now.Add(day)

	rec, err := ring.Check(short.Plain, expiry.Add(-time.Millisecond))
	if err != nil || rec.ID != short.ID || rec.RPM != 5 || !rec.AllowsModel("flm://ollama/x") || rec.AllowsModel("flm://vllm/x") {
		t.Fatalf("Check before expiry = %+v, %v", rec, err)
	}
	// At ExpiresAt exactly, and after: refused as expired, with the record
	// so the refusal can say when.
	for _, at := range []time.Time{expiry, expiry.Add(365 * day)} {
		rec, err := ring.Check(short.Plain, at)
		if !errors.Is(err, apikey.ErrExpired) || rec.ID != short.ID || rec.ExpiresAt == nil || !rec.ExpiresAt.Equal(expiry) {
			t.Fatalf("Check at %s = %+v, %v; want ErrExpired with the record", at, rec, err)
		}
	}
	if _, err := ring.Check(forever.Plain, expiry.Add(3650*day)); err != nil {
		t.Fatalf("a key without expiry: %v", err)
	}

	// An attacker learns nothing from revoked, unknown or malformed keys:
	// the same error, no record. A revoked key that is also past its
	// expiry does not say "expired".
	changed := short.Plain[:len(short.Plain)-1] + map[bool]string{true: "B", false: "A"}[strings.HasSuffix(short.Plain, "A")]
	for name, plain := range map[string]string{
		"revoked+expired": dead.Plain, "revoked": dead.Plain, "one char changed": changed,
		"empty": "", "garbage": "flm_nope", "bearer prefix": "Bearer " + forever.Plain, "huge": strings.Repeat("k", 1<<20),
	} {
		for _, at := range []time.Time{now, expiry.Add(day)} {
			rec, err := ring.Check(plain, at)
			if !errors.Is(err, apikey.ErrInvalidKey) || rec.ID != "" {
				t.Errorf("%s at %s: Check = %+v, %v; want ErrInvalidKey and no record", name, at, rec, err)
			}
		}
	}
	var nilRing *KeyRing
	if _, err := nilRing.Check(forever.Plain, now); !errors.Is(err, apikey.ErrInvalidKey) {
		t.Fatalf("nil ring: %v", err)
	}
	if nilRing.Active() != 0 {
		t.Fatal("nil ring has active keys")
	}
}

// Verify, the yes/no form existing callers use, refuses an expired key.
func TestKeyRingVerifyRefusesExpired(t *testing.T) {
	past := time.Now().Add(-time.Minute)
	future := time.Now().Add(time.Hour)
	recs := []apikey.Record{
		{ID: "key_old", Hash: apikey.Hash("flm_" + strings.Repeat("o", 43)), ExpiresAt: &past},
		{ID: "key_new", Hash: apikey.Hash("flm_" + strings.Repeat("n", 43)), ExpiresAt: &future},
	}
	ring := NewKeyRing(recs)
	if _, ok := ring.Verify("flm_" + strings.Repeat("o", 43)); ok {
		t.Fatal("Verify accepted an expired key")
	}
	if rec, ok := ring.Verify("flm_" + strings.Repeat("n", 43)); !ok || rec.ID != "key_new" {
		t.Fatal("Verify refused a key that expires in an hour")
	}
	if ring.Active() != 1 {
		t.Fatalf("Active = %d, want 1 (the expired key is not usable)", ring.Active())
	}
}
