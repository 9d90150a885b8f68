// Package settingstest provides an in-memory settings.Store and the
// conformance suite every Store implementation runs.
package settingstest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unjuno/flm/core/settings"
)

// MemStore is an in-memory settings.Store.
type MemStore struct {
	mu sync.Mutex
	m  map[string]settings.Value
}

var _ settings.Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{m: map[string]settings.Value{}} }

// Get implements settings.Store.
func (s *MemStore) Get(ctx context.Context, key string) (settings.Value, error) {
	if err := ctx.Err(); err != nil {
		return settings.Value{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return settings.Value{}, settings.ErrNotFound
	}
	return v, nil
}

// Set implements settings.Store.
func (s *MemStore) Set(ctx context.Context, v settings.Value) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[v.Key] = v
	return nil
}

// List implements settings.Store.
func (s *MemStore) List(ctx context.Context) ([]settings.Value, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Collect(maps.Values(s.m))
	slices.SortFunc(out, func(a, b settings.Value) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Run is the conformance suite for settings.Store implementations. newStore
// returns an empty store.
func Run(t *testing.T, newStore func(t *testing.T) settings.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 5_000_000, time.UTC)

	t.Run("GetUnset", func(t *testing.T) {
		if _, err := newStore(t).Get(ctx, "engine.max_network_failures"); !errors.Is(err, settings.ErrNotFound) {
			t.Fatalf("Get(unset) = %v, want ErrNotFound", err)
		}
	})
	t.Run("SetGetOverwriteList", func(t *testing.T) {
		s := newStore(t)
		for i, v := range []settings.Value{{Key: "b.key", Value: "1", UpdatedAt: t0}, {Key: "a.key", Value: "x", UpdatedAt: t0}, {Key: "b.key", Value: "2", UpdatedAt: t0.Add(time.Second)}} {
			if err := s.Set(ctx, v); err != nil {
				t.Fatalf("Set #%d: %v", i, err)
			}
		}
		got, err := s.Get(ctx, "b.key")
		if err != nil || got.Value != "2" || !got.UpdatedAt.Equal(t0.Add(time.Second)) {
			t.Fatalf("Get = %+v, %v; want the overwritten value", got, err)
		}
		all, err := s.List(ctx)
		if err != nil || len(all) != 2 || all[0].Key != "a.key" || all[1].Key != "b.key" {
			t.Fatalf("List = %+v, %v; want a.key, b.key", all, err)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k := fmt.Sprintf("k.%d", i)
				for j := range 5 {
					if err := s.Set(ctx, settings.Value{Key: k, Value: fmt.Sprint(j), UpdatedAt: t0}); err != nil {
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
		all, _ := s.List(ctx)
		if len(all) != 8 {
			t.Fatalf("List has %d values, want 8", len(all))
		}
		for _, v := range all {
			if v.Value != "4" {
				t.Fatalf("%s = %s, want the last write 4", v.Key, v.Value)
			}
		}
	})
}
