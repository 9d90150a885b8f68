package apikey_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/apikey/apikeytest"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/gateway"
)

var errInvalid = apikey.ErrInvalidKey

// verify checks a key the way the proxy does: against a key ring built
// from the stored records, at the service's time.
func verify(svc *apikey.Service, plain string) (apikey.Record, error) {
	recs, err := svc.List(context.Background())
	if err != nil {
		return apikey.Record{}, err
	}
	now := time.Now()
	if svc.Now != nil {
		now = svc.Now()
	}
	rec, err := gateway.NewKeyRing(recs).Check(plain, now)
	if err != nil {
		return apikey.Record{}, err
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

func ptr[T any](v T) *T { return &v }

func TestCreateScoped(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 678_900_000, time.UTC)
	svc, st := newService()
	svc.Now = func() time.Time { return now }

	iss, err := svc.CreateWith(ctx, apikey.CreateOptions{
		Label:     "kid-tablet",
		Models:    []string{"flm://ollama/llama3*", "flm://llamacpp/tiny-chat", "flm://ollama/llama3*"},
		RPM:       30,
		ExpiresIn: 90 * 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantExp := now.Truncate(time.Millisecond).Add(90 * 24 * time.Hour)
	if strings.Join(iss.Models, ",") != "flm://ollama/llama3*,flm://llamacpp/tiny-chat" || iss.RPM != 30 || iss.ExpiresAt == nil || !iss.ExpiresAt.Equal(wantExp) {
		t.Fatalf("issued %+v", iss.Record)
	}
	stored, _ := st.Get(ctx, iss.ID)
	if strings.Join(stored.Models, ",") != strings.Join(iss.Models, ",") || stored.RPM != 30 || !stored.ExpiresAt.Equal(wantExp) {
		t.Fatalf("stored %+v", stored)
	}
	if !stored.AllowsModel("flm://ollama/llama3:8b") || stored.AllowsModel("flm://vllm/qwen") {
		t.Fatal("the stored scope does not work")
	}

	plain, err := svc.Create(ctx, "plain")
	if err != nil || plain.Models != nil || plain.RPM != 0 || plain.ExpiresAt != nil {
		t.Fatalf("Create without options = %+v, %v", plain.Record, err)
	}

	for name, o := range map[string]apikey.CreateOptions{
		"bare model":      {Label: "x", Models: []string{"llama3"}},
		"negative rpm":    {Label: "x", RPM: -1},
		"huge rpm":        {Label: "x", RPM: 2_000_000},
		"expiry too soon": {Label: "x", ExpiresIn: time.Second},
		"expiry past":     {Label: "x", ExpiresIn: -time.Hour},
		"expiry too far":  {Label: "x", ExpiresIn: apikey.MaxLifetime + time.Hour},
		"bad label":       {Label: "", Models: []string{"flm://ollama/*"}},
	} {
		if _, err := svc.CreateWith(ctx, o); !flmerr.Is(err, flmerr.InvalidArgument) {
			t.Errorf("%s: CreateWith = %v, want INVALID_ARGUMENT", name, err)
		}
	}
	if recs, _ := st.List(ctx); len(recs) != 2 {
		t.Fatalf("refused creates stored keys: %d records", len(recs))
	}
}

func TestUpdate(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	svc, st := newService()
	svc.Now = func() time.Time { return now }
	a, _ := svc.Create(ctx, "phone")

	now = now.Add(time.Hour)
	got, err := svc.Update(ctx, a.ID, apikey.UpdateOptions{
		Models: ptr([]string{"flm://ollama/*"}), RPM: ptr(10), ExpiresIn: ptr(30 * 24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	// The expiry counts from the update, not from the key's creation.
	if got.Label != "phone" || strings.Join(got.Models, ",") != "flm://ollama/*" || got.RPM != 10 || !got.ExpiresAt.Equal(now.Add(30*24*time.Hour)) {
		t.Fatalf("Update = %+v", got)
	}
	// The key itself is unchanged: the same plaintext still verifies,
	// with the new scope.
	rec, err := verify(svc, a.Plain)
	if err != nil || rec.ID != a.ID || rec.AllowsModel("flm://vllm/qwen") || !rec.AllowsModel("flm://ollama/x") {
		t.Fatalf("after update: %+v, %v", rec, err)
	}

	got, err = svc.Update(ctx, a.ID, apikey.UpdateOptions{Label: ptr(" tablet ")})
	if err != nil || got.Label != "tablet" || got.RPM != 10 || got.Models == nil || got.ExpiresAt == nil {
		t.Fatalf("label-only update touched other fields: %+v, %v", got, err)
	}
	got, err = svc.Update(ctx, a.ID, apikey.UpdateOptions{Models: ptr([]string{}), RPM: ptr(0), ExpiresIn: ptr(time.Duration(0))})
	if err != nil || got.Models != nil || got.RPM != 0 || got.ExpiresAt != nil || got.Label != "tablet" {
		t.Fatalf("clearing update = %+v, %v", got, err)
	}

	before, _ := st.Get(ctx, a.ID)
	for name, o := range map[string]apikey.UpdateOptions{
		"nothing":         {},
		"bad label":       {Label: ptr(""), RPM: ptr(5)},
		"bare model":      {Models: ptr([]string{"flm://ollama/*", "qwen"}), RPM: ptr(5)},
		"negative rpm":    {RPM: ptr(-3), Label: ptr("ok")},
		"expiry too soon": {ExpiresIn: ptr(time.Second), Label: ptr("ok")},
	} {
		if _, err := svc.Update(ctx, a.ID, o); !flmerr.Is(err, flmerr.InvalidArgument) {
			t.Errorf("%s: Update = %v, want INVALID_ARGUMENT", name, err)
		}
	}
	after, _ := st.Get(ctx, a.ID)
	if after.Label != before.Label || after.RPM != before.RPM || after.Models != nil || after.ExpiresAt != nil {
		t.Fatalf("refused updates changed the key: %+v", after)
	}

	if _, err := svc.Update(ctx, "key_nope", apikey.UpdateOptions{RPM: ptr(1)}); !flmerr.Is(err, flmerr.APIKeyNotFound) {
		t.Fatalf("Update(unknown) = %v", err)
	}
	if _, err := svc.Revoke(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	// Updating a revoked key must not bring it back in any way.
	if _, err := svc.Update(ctx, a.ID, apikey.UpdateOptions{ExpiresIn: ptr(24 * time.Hour)}); !flmerr.Is(err, flmerr.APIKeyNotFound) {
		t.Fatalf("Update(revoked) = %v", err)
	}
	if _, err := verify(svc, a.Plain); !errors.Is(err, errInvalid) {
		t.Fatal("revoked key verifies after an update attempt")
	}
}

func TestRotateKeepsScope(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	svc, _ := newService()
	svc.Now = func() time.Time { return now }
	a, _ := svc.CreateWith(ctx, apikey.CreateOptions{Label: "kid", Models: []string{"flm://ollama/llama3*"}, RPM: 30, ExpiresIn: 90 * 24 * time.Hour})

	now = now.Add(85 * 24 * time.Hour)
	rot, err := svc.Rotate(ctx, a.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rot.Models, ",") != "flm://ollama/llama3*" || rot.RPM != 30 {
		t.Fatalf("rotation dropped the scope or limit: %+v", rot.Record)
	}
	// Same lifetime, from now: 90 days after the rotation.
	if want := now.Add(90 * 24 * time.Hour); rot.ExpiresAt == nil || !rot.ExpiresAt.Equal(want) {
		t.Fatalf("replacement expires %v, want %v", rot.ExpiresAt, want)
	}
	// An expired key can still be rotated by id.
	now = now.Add(91 * 24 * time.Hour)
	rot2, err := svc.Rotate(ctx, rot.ID, "")
	if err != nil || rot2.ExpiresAt == nil || !rot2.ExpiresAt.Equal(now.Add(90*24*time.Hour)) {
		t.Fatalf("rotating an expired key = %+v, %v", rot2.Record, err)
	}
	b, _ := svc.Create(ctx, "forever")
	rot3, _ := svc.Rotate(ctx, b.ID, "")
	if rot3.ExpiresAt != nil || rot3.Models != nil || rot3.RPM != 0 {
		t.Fatalf("rotation invented a scope: %+v", rot3.Record)
	}
}

func TestRotateExpiring(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	svc, _ := newService()
	svc.Now = func() time.Time { return now }
	day := 24 * time.Hour
	mk := func(label string, life time.Duration) apikey.Issued {
		iss, err := svc.CreateWith(ctx, apikey.CreateOptions{Label: label, ExpiresIn: life, Models: []string{"flm://ollama/*"}})
		if err != nil {
			t.Fatal(err)
		}
		return iss
	}
	gone := mk("expired", 10*day)
	soon := mk("soon", 13*day)
	edge := mk("edge", 17*day) // exactly 7 days away after the jump below
	later := mk("later", 30*day)
	never := mk("never", 0)
	revoked := mk("revoked", 12*day)
	if _, err := svc.Revoke(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	now = now.Add(10 * day)

	res, err := svc.RotateExpiring(ctx, apikey.SoonWindow)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failed) != 0 {
		t.Fatalf("failed: %+v", res.Failed)
	}
	var old []string
	for _, r := range res.Rotated {
		old = append(old, r.OldID)
		if r.Plain == "" || strings.Join(r.Models, ",") != "flm://ollama/*" {
			t.Fatalf("rotated %+v", r)
		}
	}
	if strings.Join(old, ",") != soon.ID+","+edge.ID {
		t.Fatalf("rotated %v, want [%s %s] (soon, edge)", old, soon.ID, edge.ID)
	}
	if len(res.Expired) != 1 || res.Expired[0].ID != gone.ID {
		t.Fatalf("expired = %+v, want only %s", res.Expired, gone.ID)
	}
	for _, k := range []apikey.Issued{later, never} {
		if _, err := verify(svc, k.Plain); err != nil {
			t.Fatalf("%s was rotated away", k.Label)
		}
	}
	if _, err := verify(svc, soon.Plain); !errors.Is(err, errInvalid) {
		t.Fatal("the rotated key still verifies")
	}
	if _, err := verify(svc, res.Rotated[0].Plain); err != nil {
		t.Fatal("the replacement does not verify")
	}
	// Nothing left to do: a second run rotates nothing.
	if res, _ := svc.RotateExpiring(ctx, apikey.SoonWindow); len(res.Rotated) != 0 {
		t.Fatalf("second run rotated %d keys", len(res.Rotated))
	}
	for _, w := range []time.Duration{0, -day, apikey.MaxLifetime + day} {
		if _, err := svc.RotateExpiring(ctx, w); !flmerr.Is(err, flmerr.InvalidArgument) {
			t.Errorf("RotateExpiring(%s) = %v", w, err)
		}
	}
}

// failingRevoke refuses the Revoke of one id, as a store error would.
type failingRevoke struct {
	*apikeytest.MemStore
	id string
}

func (f failingRevoke) Revoke(ctx context.Context, id string, at time.Time, next *apikey.Record) error {
	if id == f.id {
		return errors.New("disk on fire")
	}
	return f.MemStore.Revoke(ctx, id, at, next)
}

// One failed rotation does not lose the keys already issued, nor stop the
// others.
func TestRotateExpiringPartialFailure(t *testing.T) {
	ctx := context.Background()
	mem := apikeytest.NewMemStore()
	svc := &apikey.Service{Store: mem}
	var ids []string
	for _, l := range []string{"a", "b", "c"} {
		iss, err := svc.CreateWith(ctx, apikey.CreateOptions{Label: l, ExpiresIn: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, iss.ID)
	}
	svc.Store = failingRevoke{mem, ids[1]}
	res, err := svc.RotateExpiring(ctx, apikey.SoonWindow)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rotated) != 2 || res.Rotated[0].OldID != ids[0] || res.Rotated[1].OldID != ids[2] {
		t.Fatalf("rotated %+v", res.Rotated)
	}
	if len(res.Failed) != 1 || res.Failed[0].ID != ids[1] || res.Failed[0].Err == nil {
		t.Fatalf("failed %+v", res.Failed)
	}
}

// A View never carries the key's hash, and says whether it is expired.
func TestViewHidesTheHash(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	past := now.Add(-time.Hour)
	r := apikey.Record{ID: "key_1", Label: "phone", Hash: strings.Repeat("ab", 32), CreatedAt: now.Add(-48 * time.Hour), ExpiresAt: &past, Legacy: true}
	v := r.View(now)
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), r.Hash) || !v.Expired || !v.Legacy || v.Label != "phone" {
		t.Fatalf("view = %s", b)
	}
	revoked := now
	r.RevokedAt = &revoked
	if r.View(now).Expired {
		t.Fatal("a revoked key is shown as expired rather than revoked")
	}
}
