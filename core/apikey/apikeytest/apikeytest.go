// Package apikeytest provides an in-memory apikey.Store and the conformance
// suite every Store implementation runs.
package apikeytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/unjuno/flm/core/apikey"
)

// MemStore is an in-memory apikey.Store for tests.
type MemStore struct {
	mu   sync.Mutex
	recs []apikey.Record
}

var _ apikey.Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{} }

func (m *MemStore) index(match func(apikey.Record) bool) int {
	return slices.IndexFunc(m.recs, match)
}

// clone copies r so that no caller shares memory with the store, and
// keeps "every model" as nil, as Store requires.
func clone(r apikey.Record) apikey.Record {
	if r.RevokedAt != nil {
		t := *r.RevokedAt
		r.RevokedAt = &t
	}
	if r.ExpiresAt != nil {
		t := *r.ExpiresAt
		r.ExpiresAt = &t
	}
	r.Models = slices.Clone(r.Models)
	if len(r.Models) == 0 {
		r.Models = nil
	}
	return r
}

func (m *MemStore) insertLocked(rec apikey.Record) error {
	if m.index(func(r apikey.Record) bool { return r.ID == rec.ID || r.Hash == rec.Hash }) >= 0 {
		return fmt.Errorf("insert api key %s: duplicate id or hash", rec.ID)
	}
	m.recs = append(m.recs, clone(rec))
	return nil
}

// Insert implements apikey.Store.
func (m *MemStore) Insert(ctx context.Context, rec apikey.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.insertLocked(rec)
}

func (m *MemStore) find(ctx context.Context, match func(apikey.Record) bool) (apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return apikey.Record{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := m.index(match); i >= 0 {
		return clone(m.recs[i]), nil
	}
	return apikey.Record{}, apikey.ErrNotFound
}

// Get implements apikey.Store.
func (m *MemStore) Get(ctx context.Context, id string) (apikey.Record, error) {
	return m.find(ctx, func(r apikey.Record) bool { return r.ID == id })
}

// ByHash implements apikey.Store.
func (m *MemStore) ByHash(ctx context.Context, hash string) (apikey.Record, error) {
	return m.find(ctx, func(r apikey.Record) bool { return r.Hash == hash })
}

// List implements apikey.Store.
func (m *MemStore) List(ctx context.Context) ([]apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]apikey.Record, len(m.recs))
	for i, r := range m.recs {
		out[i] = clone(r)
	}
	return out, nil
}

// Revoke implements apikey.Store.
func (m *MemStore) Revoke(ctx context.Context, id string, at time.Time, next *apikey.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.index(func(r apikey.Record) bool { return r.ID == id })
	if i < 0 {
		return apikey.ErrNotFound
	}
	if !m.recs[i].Active() {
		return apikey.ErrRevoked
	}
	if next != nil {
		if err := m.insertLocked(*next); err != nil {
			return err
		}
	}
	m.recs[i].RevokedAt = &at
	return nil
}

// Update implements apikey.Store.
func (m *MemStore) Update(ctx context.Context, id string, edit func(*apikey.Record) error) (apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return apikey.Record{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.index(func(r apikey.Record) bool { return r.ID == id })
	if i < 0 {
		return apikey.Record{}, apikey.ErrNotFound
	}
	if !m.recs[i].Active() {
		return apikey.Record{}, apikey.ErrRevoked
	}
	r := clone(m.recs[i])
	if err := edit(&r); err != nil {
		return apikey.Record{}, err
	}
	cur := &m.recs[i]
	cur.Label, cur.Models, cur.RPM, cur.ExpiresAt = r.Label, r.Models, r.RPM, r.ExpiresAt
	*cur = clone(*cur)
	return clone(*cur), nil
}

// Run is the conformance suite for apikey.Store implementations. newStore
// returns an empty store.
func Run(t *testing.T, newStore func(t *testing.T) apikey.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 123_000_000, time.UTC)
	rec := func(id, hash string) apikey.Record {
		return apikey.Record{ID: id, Label: "label " + id, Hash: hash, CreatedAt: t0}
	}
	same := func(t *testing.T, got, want apikey.Record) {
		t.Helper()
		if got.ID != want.ID || got.Label != want.Label || got.Hash != want.Hash || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Fatalf("record = %+v, want %+v", got, want)
		}
		if (got.RevokedAt == nil) != (want.RevokedAt == nil) || got.RevokedAt != nil && !got.RevokedAt.Equal(*want.RevokedAt) {
			t.Fatalf("revoked_at = %v, want %v", got.RevokedAt, want.RevokedAt)
		}
		// "Every model" comes back as nil, never as an empty list, so
		// that no caller can confuse it with a list that allows nothing.
		if !slices.Equal(got.Models, want.Models) || (got.Models == nil) != (len(want.Models) == 0) {
			t.Fatalf("models = %#v, want %#v", got.Models, want.Models)
		}
		if got.RPM != want.RPM {
			t.Fatalf("rpm = %d, want %d", got.RPM, want.RPM)
		}
		if got.Legacy != want.Legacy {
			t.Fatalf("legacy = %v, want %v", got.Legacy, want.Legacy)
		}
		if (got.ExpiresAt == nil) != (want.ExpiresAt == nil) || got.ExpiresAt != nil && !got.ExpiresAt.Equal(*want.ExpiresAt) {
			t.Fatalf("expires_at = %v, want %v", got.ExpiresAt, want.ExpiresAt)
		}
	}
	scoped := func(id, hash string) apikey.Record {
		r := rec(id, hash)
		exp := t0.Add(90 * 24 * time.Hour)
		// Names with '/', ':', '*', spaces and non-ASCII survive as written.
		r.Models = []string{"flm://ollama/llama3*", "flm://llamacpp/org/model:Q4", "flm://lmstudio/モデル name", "flm://vllm/a*b?"}
		r.RPM, r.ExpiresAt = 30, &exp
		return r
	}

	// A key imported from the prototype keeps its Legacy mark through
	// every read, and through a revocation.
	t.Run("LegacyRoundTrip", func(t *testing.T) {
		s := newStore(t)
		l := rec("key_legacy", apikey.Hash("AAAAAAAAAAAAAAAAAAAAAAAAAAAA+/9z"))
		l.Legacy = true
		n := rec("key_native", apikey.Hash("native"))
		for _, r := range []apikey.Record{l, n} {
			if err := s.Insert(ctx, r); err != nil {
				t.Fatalf("Insert(%s): %v", r.ID, err)
			}
		}
		got, err := s.ByHash(ctx, l.Hash)
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, l)
		got, _ = s.Get(ctx, n.ID)
		same(t, got, n)
		at := t0.Add(time.Hour)
		if err := s.Revoke(ctx, l.ID, at, nil); err != nil {
			t.Fatal(err)
		}
		l.RevokedAt = &at
		all, err := s.List(ctx)
		if err != nil || len(all) != 2 {
			t.Fatalf("List = %v, %v", all, err)
		}
		for _, r := range all {
			if r.ID == l.ID {
				same(t, r, l)
			}
		}
	})

	t.Run("InsertGetByHashList", func(t *testing.T) {
		s := newStore(t)
		a, b := rec("key_a", apikey.Hash("a")), rec("key_b", apikey.Hash("b"))
		b.CreatedAt = t0.Add(time.Second)
		for _, r := range []apikey.Record{a, b} {
			if err := s.Insert(ctx, r); err != nil {
				t.Fatalf("Insert(%s): %v", r.ID, err)
			}
		}
		got, err := s.Get(ctx, "key_a")
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, a)
		got, err = s.ByHash(ctx, b.Hash)
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, b)
		all, err := s.List(ctx)
		if err != nil || len(all) != 2 {
			t.Fatalf("List = %v, %v; want 2 records", all, err)
		}
		same(t, all[0], a)
		same(t, all[1], b)
	})

	t.Run("NotFound", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, "key_missing"); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("Get(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := s.ByHash(ctx, apikey.Hash("nope")); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("ByHash(unknown) = %v, want ErrNotFound", err)
		}
		if err := s.Revoke(ctx, "key_missing", t0, nil); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("Revoke(unknown) = %v, want ErrNotFound", err)
		}
		if all, err := s.List(ctx); err != nil || len(all) != 0 {
			t.Fatalf("List(empty) = %v, %v", all, err)
		}
	})

	t.Run("DuplicatesRefused", func(t *testing.T) {
		s := newStore(t)
		if err := s.Insert(ctx, rec("key_a", apikey.Hash("a"))); err != nil {
			t.Fatal(err)
		}
		if err := s.Insert(ctx, rec("key_a", apikey.Hash("other"))); err == nil {
			t.Fatal("duplicate id accepted")
		}
		if err := s.Insert(ctx, rec("key_b", apikey.Hash("a"))); err == nil {
			t.Fatal("duplicate hash accepted")
		}
		if all, _ := s.List(ctx); len(all) != 1 {
			t.Fatalf("after refused inserts List has %d records, want 1", len(all))
		}
	})

	t.Run("RevokeOnceOnly", func(t *testing.T) {
		s := newStore(t)
		a := rec("key_a", apikey.Hash("a"))
		if err := s.Insert(ctx, a); err != nil {
			t.Fatal(err)
		}
		at := t0.Add(time.Minute)
		if err := s.Revoke(ctx, "key_a", at, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, "key_a", at.Add(time.Minute), nil); !errors.Is(err, apikey.ErrRevoked) {
			t.Fatalf("second Revoke = %v, want ErrRevoked", err)
		}
		a.RevokedAt = &at
		got, err := s.ByHash(ctx, a.Hash)
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, a)
	})

	t.Run("RevokeWithReplacementIsAtomic", func(t *testing.T) {
		s := newStore(t)
		a, b := rec("key_a", apikey.Hash("a")), rec("key_b", apikey.Hash("b"))
		for _, r := range []apikey.Record{a, b} {
			if err := s.Insert(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		// A replacement that collides must leave the old key active.
		clash := rec("key_c", b.Hash)
		if err := s.Revoke(ctx, "key_a", t0, &clash); err == nil {
			t.Fatal("Revoke with a colliding replacement succeeded")
		}
		if got, _ := s.Get(ctx, "key_a"); !got.Active() {
			t.Fatal("failed rotation revoked the old key anyway")
		}
		next := rec("key_c", apikey.Hash("c"))
		if err := s.Revoke(ctx, "key_a", t0, &next); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, "key_a"); got.Active() {
			t.Fatal("rotation left the old key active")
		}
		if got, err := s.Get(ctx, "key_c"); err != nil || !got.Active() {
			t.Fatalf("replacement = %+v, %v", got, err)
		}
	})

	t.Run("ScopeRoundTrip", func(t *testing.T) {
		s := newStore(t)
		a := scoped("key_a", apikey.Hash("a"))
		b, c := rec("key_b", apikey.Hash("b")), rec("key_c", apikey.Hash("c"))
		c.Models = []string{} // empty = every model: read back as nil
		for _, r := range []apikey.Record{a, b, c} {
			if err := s.Insert(ctx, r); err != nil {
				t.Fatalf("Insert(%s): %v", r.ID, err)
			}
		}
		c.Models = nil
		for _, want := range []apikey.Record{a, b, c} {
			got, err := s.Get(ctx, want.ID)
			if err != nil {
				t.Fatal(err)
			}
			same(t, got, want)
			if got, err = s.ByHash(ctx, want.Hash); err != nil {
				t.Fatal(err)
			}
			same(t, got, want)
		}
		all, err := s.List(ctx)
		if err != nil || len(all) != 3 {
			t.Fatalf("List = %v, %v", all, err)
		}
		same(t, all[0], a)
		// A caller changing what it got must not change the store.
		all[0].Models[0] = "flm://*"
		*all[0].ExpiresAt = time.Time{}
		got, _ := s.Get(ctx, "key_a")
		same(t, got, a)
	})

	t.Run("Update", func(t *testing.T) {
		s := newStore(t)
		a := rec("key_a", apikey.Hash("a"))
		if err := s.Insert(ctx, a); err != nil {
			t.Fatal(err)
		}
		want := scoped("key_a", a.Hash)
		want.Label = "narrowed"
		got, err := s.Update(ctx, "key_a", func(r *apikey.Record) error {
			same(t, *r, a)
			// Only the four mutable fields may change.
			r.ID, r.Hash, r.CreatedAt = "key_other", apikey.Hash("other"), t0.Add(time.Hour)
			r.Label, r.Models, r.RPM, r.ExpiresAt = want.Label, want.Models, want.RPM, want.ExpiresAt
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, want)
		if got, err = s.ByHash(ctx, a.Hash); err != nil {
			t.Fatal(err)
		}
		same(t, got, want)
		if _, err := s.Get(ctx, "key_other"); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("Update changed the id: Get(key_other) = %v", err)
		}

		// Clearing: every model, no own limit, no expiry.
		got, err = s.Update(ctx, "key_a", func(r *apikey.Record) error {
			r.Models, r.RPM, r.ExpiresAt = []string{}, 0, nil
			return nil
		})
		want.Models, want.RPM, want.ExpiresAt = nil, 0, nil
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, want)
		got, _ = s.Get(ctx, "key_a")
		same(t, got, want)

		// An edit that fails stores nothing and its error comes back.
		errEdit := errors.New("edit refused")
		if _, err := s.Update(ctx, "key_a", func(r *apikey.Record) error {
			r.Label, r.RPM = "half-done", 7
			return errEdit
		}); !errors.Is(err, errEdit) {
			t.Fatalf("Update with a failing edit = %v, want the edit's error", err)
		}
		got, _ = s.Get(ctx, "key_a")
		same(t, got, want)

		called := false
		edit := func(*apikey.Record) error { called = true; return nil }
		if _, err := s.Update(ctx, "key_missing", edit); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("Update(unknown) = %v, want ErrNotFound", err)
		}
		at := t0.Add(time.Minute)
		if err := s.Revoke(ctx, "key_a", at, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, "key_a", edit); !errors.Is(err, apikey.ErrRevoked) {
			t.Fatalf("Update(revoked) = %v, want ErrRevoked", err)
		}
		if called {
			t.Fatal("Update called edit for an unknown or revoked key")
		}
	})

	t.Run("ReplacementKeepsScope", func(t *testing.T) {
		s := newStore(t)
		a := scoped("key_a", apikey.Hash("a"))
		if err := s.Insert(ctx, a); err != nil {
			t.Fatal(err)
		}
		next := scoped("key_b", apikey.Hash("b"))
		if err := s.Revoke(ctx, "key_a", t0, &next); err != nil {
			t.Fatal(err)
		}
		got, err := s.ByHash(ctx, next.Hash)
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, next)
	})

	t.Run("UpdatesDoNotLoseEachOther", func(t *testing.T) {
		s := newStore(t)
		if err := s.Insert(ctx, rec("key_a", apikey.Hash("a"))); err != nil {
			t.Fatal(err)
		}
		// Each edit reads and increments: a store that does not run the
		// read and the write in one transaction loses increments.
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 4 {
					if _, err := s.Update(ctx, "key_a", func(r *apikey.Record) error { r.RPM++; return nil }); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, "key_a"); got.RPM != 32 {
			t.Fatalf("after 32 concurrent increments rpm = %d", got.RPM)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 4 {
					id := fmt.Sprintf("key_%d_%d", i, j)
					if err := s.Insert(ctx, rec(id, apikey.Hash(id))); err != nil {
						errs <- err
						return
					}
					if _, err := s.ByHash(ctx, apikey.Hash(id)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if all, _ := s.List(ctx); len(all) != 32 {
			t.Fatalf("List has %d records, want 32", len(all))
		}
	})
}
