package keychain_test

import (
	"context"
	"testing"

	"github.com/unjuno/flm/cli/internal/keychain"
	"github.com/unjuno/flm/cli/internal/keychain/keyringtest"
)

// BenchmarkSecretServiceGet is the keychain's share of opening
// security.db: one lookup on the real gnome-keyring (connect, search,
// session, read).
func BenchmarkSecretServiceGet(b *testing.B) {
	s := keyringtest.Start(b)
	ss := &keychain.SecretService{Scope: "/bench", Getenv: s.Getenv(nil)}
	ctx := context.Background()
	if err := ss.Put(ctx, "security.key", []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := ss.Get(ctx, "security.key"); err != nil {
			b.Fatal(err)
		}
	}
}
