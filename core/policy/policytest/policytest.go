// Package policytest provides an in-memory policy.Store and the
// conformance suite every policy.Store adapter must pass, in the manner of
// testing/fstest.
package policytest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/unjuno/flm/core/policy"
)

type memStore struct {
	mu  sync.Mutex
	doc []byte
	at  time.Time
}

// NewMemStore returns an in-memory Store seeded, like a migrated database,
// with policy.DefaultDocument.
func NewMemStore() policy.Store {
	return &memStore{doc: []byte(policy.DefaultDocument), at: time.Now().Round(0)}
}

func (m *memStore) Get(ctx context.Context) ([]byte, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.doc), m.at, nil
}

func (m *memStore) Put(ctx context.Context, doc []byte, at time.Time) error {
	doc = bytes.Clone(doc)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.doc, m.at = doc, at
	return nil
}

// Run checks the Store contract against stores made by newStore, which must
// return a fresh, migrated store on every call.
func Run(t *testing.T, newStore func(t *testing.T) policy.Store) {
	t.Helper()

	// Not UTC and not whole milliseconds: adapters may store ms precision
	// in any zone, but must keep the instant.
	at := time.Date(2025, 3, 4, 5, 6, 7, 891_234_567, time.FixedZone("UTC+9", 9*3600))
	docA := []byte(`{"ip_whitelist":["10.0.0.0/8","2001:db8::/32"],"cors":{"allowed_origins":["https://a.example"]},"rate_limit":{"rpm":60,"burst":10},"x_future":{"x":[1,2]}}`)
	docB := []byte(`{"ip_whitelist":[],"cors":{"allowed_origins":["*"]}}`)

	get := func(t *testing.T, s policy.Store) ([]byte, time.Time) {
		t.Helper()
		doc, updated, err := s.Get(t.Context())
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		return doc, updated
	}
	put := func(t *testing.T, s policy.Store, doc []byte, at time.Time) {
		t.Helper()
		if err := s.Put(t.Context(), doc, at); err != nil {
			t.Fatalf("Put(%s): %v", doc, err)
		}
	}

	t.Run("FreshStoreHasDefault", func(t *testing.T) {
		doc, _ := get(t, newStore(t))
		if string(doc) != policy.DefaultDocument {
			t.Fatalf("fresh store: Get = %q, want %q", doc, policy.DefaultDocument)
		}
		if _, err := policy.Parse(doc); err != nil {
			t.Fatalf("fresh store document does not parse: %v", err)
		}
	})

	t.Run("PutThenGet", func(t *testing.T) {
		s := newStore(t)
		put(t, s, docA, at)
		doc, updated := get(t, s)
		if !bytes.Equal(doc, docA) {
			t.Errorf("Get = %q, want %q", doc, docA)
		}
		if !updated.Truncate(time.Millisecond).Equal(at.Truncate(time.Millisecond)) {
			t.Errorf("updatedAt = %v, want %v (millisecond precision)", updated, at)
		}
	})

	t.Run("PutReplacesWholeDocument", func(t *testing.T) {
		s := newStore(t)
		put(t, s, docA, at)
		later := at.Add(time.Hour)
		put(t, s, docB, later)
		doc, updated := get(t, s)
		if !bytes.Equal(doc, docB) {
			t.Errorf("after second Put: Get = %q, want %q", doc, docB)
		}
		if !updated.Truncate(time.Millisecond).Equal(later.Truncate(time.Millisecond)) {
			t.Errorf("updatedAt = %v, want %v", updated, later)
		}
	})

	t.Run("BytesAreCopied", func(t *testing.T) {
		s := newStore(t)
		in := bytes.Clone(docA)
		put(t, s, in, at)
		for i := range in {
			in[i] = 'x'
		}
		doc, _ := get(t, s)
		if !bytes.Equal(doc, docA) {
			t.Fatalf("mutating the slice passed to Put changed the store: %q", doc)
		}
		for i := range doc {
			doc[i] = 'y'
		}
		again, _ := get(t, s)
		if !bytes.Equal(again, docA) {
			t.Fatalf("mutating the slice Get returned changed the store: %q", again)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t)
		const workers, rounds = 8, 20
		written := [][]byte{[]byte(policy.DefaultDocument)}
		for w := range workers {
			written = append(written, fmt.Appendf(nil, `{"ip_whitelist":["10.0.0.%d"],"cors":{"allowed_origins":[]}}`, w+1))
		}
		isWritten := func(doc []byte) bool {
			return slices.ContainsFunc(written, func(w []byte) bool { return bytes.Equal(w, doc) })
		}
		ctx := t.Context()
		var wg sync.WaitGroup
		errs := make(chan error, workers*rounds*2)
		for w := range workers {
			wg.Go(func() {
				for r := range rounds {
					if err := s.Put(ctx, written[w+1], at.Add(time.Duration(r)*time.Second)); err != nil {
						errs <- fmt.Errorf("worker %d: Put: %w", w, err)
						return
					}
					doc, _, err := s.Get(ctx)
					if err != nil {
						errs <- fmt.Errorf("worker %d: Get: %w", w, err)
						return
					}
					if !isWritten(doc) {
						errs <- fmt.Errorf("worker %d: Get returned a document nobody wrote: %q", w, doc)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		doc, _ := get(t, s)
		if !isWritten(doc) || bytes.Equal(doc, written[0]) {
			t.Errorf("final Get = %q, want one of the documents written", doc)
		}
	})
}
