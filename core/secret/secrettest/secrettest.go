// Package secrettest provides an in-memory secret.Store and the conformance
// suite every Store implementation runs.
package secrettest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/unjuno/flm/core/secret"
)

// MemStore is an in-memory secret.Store. Fail, when set, makes every call
// return that error, so tests can play a locked or absent keychain.
type MemStore struct {
	mu   sync.Mutex
	vals map[string][]byte
	fail error
	// Calls counts Get, Put and Delete calls.
	Calls int
}

var _ secret.Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{vals: map[string][]byte{}} }

// SetFail makes every later call return err (nil restores normal service).
func (m *MemStore) SetFail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = err
}

func (m *MemStore) begin(ctx context.Context) error {
	m.Calls++
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.fail
}

// Get implements secret.Store.
func (m *MemStore) Get(ctx context.Context, name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin(ctx); err != nil {
		return nil, err
	}
	v, ok := m.vals[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, secret.ErrNotFound)
	}
	return bytes.Clone(v), nil
}

// Put implements secret.Store.
func (m *MemStore) Put(ctx context.Context, name string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin(ctx); err != nil {
		return err
	}
	if !secret.ValidValue(value) {
		return fmt.Errorf("%s: value is not printable text of 1..%d bytes", name, secret.MaxValueBytes)
	}
	m.vals[name] = bytes.Clone(value)
	return nil
}

// Delete implements secret.Store.
func (m *MemStore) Delete(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin(ctx); err != nil {
		return err
	}
	if _, ok := m.vals[name]; !ok {
		return fmt.Errorf("%s: %w", name, secret.ErrNotFound)
	}
	delete(m.vals, name)
	return nil
}

// Run is the conformance suite: newStore returns an empty store, isolated
// from every other store it returned.
func Run(t *testing.T, newStore func(t *testing.T) secret.Store) {
	ctx := context.Background()
	t.Run("MissingIsNotFound", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, "absent.key"); !errors.Is(err, secret.ErrNotFound) {
			t.Fatalf("Get(absent) = %v; want ErrNotFound", err)
		}
		if err := s.Delete(ctx, "absent.key"); !errors.Is(err, secret.ErrNotFound) {
			t.Fatalf("Delete(absent) = %v; want ErrNotFound", err)
		}
	})
	t.Run("PutGetReplaceDelete", func(t *testing.T) {
		s := newStore(t)
		v1 := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
		v2 := []byte(`with spaces, quotes ' " \ and 'more' $HOME`)
		if err := s.Put(ctx, "a.key", v1); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, "a.key"); err != nil || !bytes.Equal(got, v1) {
			t.Fatalf("Get = %q, %v; want %q", got, err, v1)
		}
		if err := s.Put(ctx, "a.key", v2); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, "a.key"); err != nil || !bytes.Equal(got, v2) {
			t.Fatalf("Get after replace = %q, %v; want %q", got, err, v2)
		}
		if err := s.Delete(ctx, "a.key"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "a.key"); !errors.Is(err, secret.ErrNotFound) {
			t.Fatalf("Get after Delete = %v; want ErrNotFound", err)
		}
	})
	t.Run("NamesAreIndependent", func(t *testing.T) {
		s := newStore(t)
		if err := s.Put(ctx, "one.key", []byte("one")); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "one.key.next", []byte("two")); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "one.key.next"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, "one.key"); err != nil || string(got) != "one" {
			t.Fatalf("Get(one.key) = %q, %v after deleting a sibling", got, err)
		}
	})
	t.Run("ReturnedValueIsACopy", func(t *testing.T) {
		s := newStore(t)
		if err := s.Put(ctx, "c.key", []byte("stable")); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Get(ctx, "c.key")
		clear(got)
		if again, err := s.Get(ctx, "c.key"); err != nil || string(again) != "stable" {
			t.Fatalf("clearing a returned value changed the store: %q, %v", again, err)
		}
	})
	t.Run("CancelledContext", func(t *testing.T) {
		s := newStore(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Get(cctx, "x.key"); err == nil {
			t.Fatal("Get with a cancelled context succeeded")
		}
	})
}
