package secrettest

import (
	"context"
	"errors"
	"testing"

	"github.com/unjuno/flm/core/secret"
)

func TestMemStoreConformance(t *testing.T) {
	Run(t, func(*testing.T) secret.Store { return NewMemStore() })
}

func TestMemStoreFailAndValidation(t *testing.T) {
	ctx := context.Background()
	m := NewMemStore()
	if err := m.Put(ctx, "k", []byte("line\nbreak")); err == nil {
		t.Fatal("Put accepted a value with a newline")
	}
	if err := m.Put(ctx, "k", nil); err == nil {
		t.Fatal("Put accepted an empty value")
	}
	m.SetFail(secret.ErrLocked)
	if _, err := m.Get(ctx, "k"); !errors.Is(err, secret.ErrLocked) {
		t.Fatalf("Get on a failing store = %v", err)
	}
	if err := m.Put(ctx, "k", []byte("v")); !errors.Is(err, secret.ErrLocked) {
		t.Fatalf("Put on a failing store = %v", err)
	}
	if err := m.Delete(ctx, "k"); !errors.Is(err, secret.ErrLocked) {
		t.Fatalf("Delete on a failing store = %v", err)
	}
	m.SetFail(nil)
	if err := m.Put(ctx, "k", []byte("v")); err != nil || m.Calls != 6 {
		t.Fatalf("Put after SetFail(nil) = %v (calls %d)", err, m.Calls)
	}
}

func TestValidValue(t *testing.T) {
	for v, want := range map[string]bool{"abc": true, "": false, "a\x00b": false, "tab\there": false, "del\x7f": false, "ünïcode": true} {
		if got := secret.ValidValue([]byte(v)); got != want {
			t.Errorf("ValidValue(%q) = %v, want %v", v, got, want)
		}
	}
	long := make([]byte, secret.MaxValueBytes+1)
	for i := range long {
		long[i] = 'a'
	}
	if secret.ValidValue(long) || !secret.ValidValue(long[:secret.MaxValueBytes]) {
		t.Fatal("MaxValueBytes boundary")
	}
}
