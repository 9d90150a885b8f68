package apikey_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/apikey/apikeytest"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/gateway"
)

var errInvalid = errors.New("invalid api key")

// verify checks a key the way the proxy does: against a key ring built
// from the stored records.
func verify(svc *apikey.Service, plain string) (apikey.Record, error) {
	recs, err := svc.List(context.Background())
	if err != nil {
		return apikey.Record{}, err
	}
	rec, ok := gateway.NewKeyRing(recs).Verify(plain)
	if !ok {
		return apikey.Record{}, errInvalid
	}
	return rec, nil
}

func newService() (*apikey.Service, *apikeytest.MemStore) {
	st := apikeytest.NewMemStore()
	return &apikey.Service{Store: st}, st
}

func TestCreateVerify(t *testing.T) {
	ctx := context.Background()
	svc, st := newService()
	iss, err := svc.Create(ctx, "  laptop  ")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(iss.Plain, "flm_") || len(iss.Plain) != apikey.KeyLen || !apikey.WellFormed(iss.Plain) {
		t.Fatalf("plain key %q has the wrong shape", iss.Plain)
	}
	if iss.Label != "laptop" {
		t.Fatalf("label = %q, want trimmed %q", iss.Label, "laptop")
	}
	recs, _ := st.List(ctx)
	if len(recs) != 1 || recs[0].Hash != apikey.Hash(iss.Plain) || strings.Contains(recs[0].Hash, iss.Plain[4:]) {
		t.Fatalf("store holds %+v; want only the hash", recs)
	}
	got, err := verify(svc, iss.Plain)
	if err != nil || got.ID != iss.ID {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	// A changed last character, garbage, empty, a huge token: all refused alike.
	last := iss.Plain[len(iss.Plain)-1]
	changed := iss.Plain[:len(iss.Plain)-1] + string("AB"[btoi(last == 'A')])
	for _, bad := range []string{changed, "", "garbage", "flm_", strings.Repeat("x", 100_000), iss.Plain + "x", "FLM_" + iss.Plain[4:]} {
		if _, err := verify(svc, bad); !errors.Is(err, errInvalid) {
			t.Errorf("Verify(%.20q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestKeysAreRandom(t *testing.T) {
	svc, _ := newService()
	seen := map[string]bool{}
	for range 200 {
		iss, err := svc.Create(context.Background(), "k")
		if err != nil {
			t.Fatal(err)
		}
		if seen[iss.Plain] || seen[iss.ID] {
			t.Fatal("duplicate key or id")
		}
		seen[iss.Plain], seen[iss.ID] = true, true
	}
}

func TestLabelValidation(t *testing.T) {
	svc, st := newService()
	for _, label := range []string{"", "   ", strings.Repeat("a", 10_000), "bad\x00label", "tab\there", string([]byte{0xff, 0xfe})} {
		_, err := svc.Create(context.Background(), label)
		if !flmerr.Is(err, flmerr.InvalidArgument) {
			t.Errorf("Create(%.20q) = %v, want INVALID_ARGUMENT", label, err)
		}
	}
	if recs, _ := st.List(context.Background()); len(recs) != 0 {
		t.Fatalf("refused labels stored %d records", len(recs))
	}
	if _, err := svc.Create(context.Background(), strings.Repeat("é", apikey.MaxLabelRunes)); err != nil {
		t.Fatalf("a 200-character label must be accepted: %v", err)
	}
}

func TestRevokeAndRotate(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	svc, _ := newService()
	svc.Now = func() time.Time { return now }

	a, _ := svc.Create(ctx, "phone")
	rot, err := svc.Rotate(ctx, a.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if rot.Label != "phone" || rot.OldID != a.ID || rot.ID == a.ID || rot.Plain == a.Plain {
		t.Fatalf("rotation = %+v", rot)
	}
	if _, err := verify(svc, a.Plain); !errors.Is(err, errInvalid) {
		t.Fatal("rotated-away key still verifies")
	}
	if _, err := verify(svc, rot.Plain); err != nil {
		t.Fatalf("replacement key: %v", err)
	}
	rot2, err := svc.Rotate(ctx, rot.ID, "tablet")
	if err != nil || rot2.Label != "tablet" {
		t.Fatalf("rotate with label = %+v, %v", rot2, err)
	}
	if _, err := svc.Rotate(ctx, rot2.ID, strings.Repeat("x", 300)); !flmerr.Is(err, flmerr.InvalidArgument) {
		t.Fatalf("rotate with a bad label = %v", err)
	}
	if _, err := verify(svc, rot2.Plain); err != nil {
		t.Fatal("a refused rotation must leave the key working")
	}

	r, err := svc.Revoke(ctx, rot2.ID)
	if err != nil || r.RevokedAt == nil || !r.RevokedAt.Equal(now) {
		t.Fatalf("Revoke = %+v, %v", r, err)
	}
	if _, err := verify(svc, rot2.Plain); !errors.Is(err, errInvalid) {
		t.Fatal("revoked key still verifies")
	}
	for name, err := range map[string]error{
		"revoke again":   second(svc.Revoke(ctx, rot2.ID)),
		"revoke unknown": second(svc.Revoke(ctx, "key_nope")),
		"rotate revoked": second(svc.Rotate(ctx, a.ID, "")),
		"rotate unknown": second(svc.Rotate(ctx, "key_nope", "")),
	} {
		if !flmerr.Is(err, flmerr.APIKeyNotFound) {
			t.Errorf("%s: %v, want API_KEY_NOT_FOUND", name, err)
		}
	}
	list, _ := svc.List(ctx)
	if len(list) != 3 {
		t.Fatalf("List has %d keys, want 3", len(list))
	}
}

func second[T any](_ T, err error) error { return err }

func TestRandomFailure(t *testing.T) {
	svc, _ := newService()
	svc.Rand = bytes.NewReader(nil)
	if _, err := svc.Create(context.Background(), "x"); !flmerr.Is(err, flmerr.Internal) {
		t.Fatalf("Create with a dead RNG = %v, want INTERNAL", err)
	}
}

func FuzzWellFormed(f *testing.F) {
	svc, _ := newService()
	iss, _ := svc.Create(context.Background(), "f")
	for _, s := range []string{iss.Plain, "", "flm_", "flm_" + strings.Repeat("A", 43), "flm_" + strings.Repeat("+", 43)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if apikey.WellFormed(s) && (len(s) != apikey.KeyLen || !strings.HasPrefix(s, "flm_")) {
			t.Fatalf("WellFormed accepted %q", s)
		}
		if _, err := verify(svc, s); err != nil && !errors.Is(err, errInvalid) {
			t.Fatalf("Verify(%q) = %v", s, err)
		}
	})
}
