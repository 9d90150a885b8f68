package policy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/policy/policytest"
)

// Service tests live in policy_test because policytest imports policy.

var fixedNow = time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)

func newService(t *testing.T) (*policy.Service, policy.Store) {
	t.Helper()
	st := policytest.NewMemStore()
	return &policy.Service{Store: st, Now: func() time.Time { return fixedNow }}, st
}

func storedDoc(t *testing.T, st policy.Store) string {
	t.Helper()
	doc, _, err := st.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return string(doc)
}

func TestServiceShowDefault(t *testing.T) {
	svc, _ := newService(t)
	got, err := svc.Show(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if doc := string(got.Policy.Document()); doc != policy.DefaultDocument {
		t.Fatalf("Show on a fresh store = %s, want the default", doc)
	}
}

func TestServiceSet(t *testing.T) {
	svc, st := newService(t)
	got, err := svc.Set(t.Context(), []byte(` {"ip_whitelist":["10.0.0.0/8"],"cors":{"allowed_origins":["HTTPS://App.Example:443"]},"future":[ 1 ]} `))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"ip_whitelist":["10.0.0.0/8"],"cors":{"allowed_origins":["https://app.example"]},"future":[1]}`
	if doc := storedDoc(t, st); doc != want {
		t.Fatalf("stored %s\nwant %s", doc, want)
	}
	if !got.UpdatedAt.Equal(fixedNow) || string(got.Policy.Document()) != want {
		t.Fatalf("Set returned %v %s", got.UpdatedAt, got.Policy.Document())
	}
	shown, err := svc.Show(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !shown.UpdatedAt.Equal(fixedNow) || string(shown.Policy.Document()) != want {
		t.Fatalf("Show returned %v %s", shown.UpdatedAt, shown.Policy.Document())
	}
}

func TestServiceSetInvalidChangesNothing(t *testing.T) {
	for _, doc := range []string{
		``,
		`{"ip_whitelist":["10.0.0.0/33"]}`,
		`{"rate_limit":{"rpm":1.5}}`,
		`{"cors":null}`,
		`{} x`,
	} {
		t.Run(doc, func(t *testing.T) {
			svc, st := newService(t)
			if _, err := svc.Set(t.Context(), []byte(`{"ip_whitelist":["10.0.0.1"]}`)); err != nil {
				t.Fatal(err)
			}
			before := storedDoc(t, st)
			_, err := svc.Set(t.Context(), []byte(doc))
			if !flmerr.Is(err, flmerr.PolicyInvalid) {
				t.Fatalf("Set(%q) error = %v, want POLICY_INVALID", doc, err)
			}
			if after := storedDoc(t, st); after != before {
				t.Fatalf("invalid Set changed the store: %s -> %s", before, after)
			}
		})
	}
}

func TestServiceShowCorrupt(t *testing.T) {
	svc, st := newService(t)
	if err := st.Put(t.Context(), []byte(`{"ip_whitelist":null}`), fixedNow); err != nil {
		t.Fatal(err)
	}
	_, err := svc.Show(t.Context())
	if !flmerr.Is(err, flmerr.PolicyInvalid) {
		t.Fatalf("Show of a corrupt document: err = %v, want POLICY_INVALID", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "stored security policy is invalid") || !strings.Contains(msg, "ip_whitelist: must be an array") {
		t.Fatalf("message %q does not name the problem", msg)
	}
}

type failingStore struct{ err error }

func (f failingStore) Get(context.Context) ([]byte, time.Time, error) { return nil, time.Time{}, f.err }
func (f failingStore) Put(context.Context, []byte, time.Time) error   { return f.err }

func TestServiceStoreErrorsPassThrough(t *testing.T) {
	storeErr := flmerr.New(flmerr.DBReadOnly, "read-only")
	svc := &policy.Service{Store: failingStore{storeErr}}
	if _, err := svc.Show(t.Context()); !errors.Is(err, storeErr) {
		t.Errorf("Show error = %v, want the store's", err)
	}
	if _, err := svc.Set(t.Context(), []byte(`{}`)); !errors.Is(err, storeErr) {
		t.Errorf("Set error = %v, want the store's", err)
	}
}

func TestServiceDefaultClock(t *testing.T) {
	st := policytest.NewMemStore()
	svc := &policy.Service{Store: st}
	before := time.Now()
	got, err := svc.Set(t.Context(), []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.UpdatedAt.Before(before.Round(0).Truncate(time.Millisecond)) || got.UpdatedAt.After(time.Now()) {
		t.Fatalf("UpdatedAt = %v, want about now", got.UpdatedAt)
	}
}

func TestServiceWithoutStore(t *testing.T) {
	var svc policy.Service
	if _, err := svc.Show(t.Context()); !flmerr.Is(err, flmerr.Internal) {
		t.Errorf("Show without a store: %v", err)
	}
	if _, err := svc.Set(t.Context(), []byte(`{}`)); !flmerr.Is(err, flmerr.Internal) {
		t.Errorf("Set without a store: %v", err)
	}
}
