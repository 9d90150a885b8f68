package store

import (
	"context"
	"testing"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/gateway"
)

// BenchmarkOpenAndFirstVerify is what a CLI command or a starting proxy
// pays: open security.db (key lookup, decrypt, migrate check) and verify
// one API key against the stored hashes.
func BenchmarkOpenAndFirstVerify(b *testing.B) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		open func(dir string) (*DB, error)
	}{
		{"plaintext", func(dir string) (*DB, error) { return OpenUnencryptedForTest(ctx, dir) }},
		{"adiantum/FLM_DB_KEY", nil},
		{"adiantum/key-file", func(dir string) (*DB, error) { return Open(ctx, dir, Security, WithKeys(KeyConfig{Mode: KeyFile})) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			open := c.open
			if open == nil {
				key := NewKey()
				open = func(dir string) (*DB, error) { return Open(ctx, dir, Security, WithKeys(KeyConfig{EnvKey: key.Hex()})) }
			}
			d, err := open(dir)
			if err != nil {
				b.Fatal(err)
			}
			svc := &apikey.Service{Store: APIKeys{d}}
			var last string
			for range 100 {
				k, err := svc.Create(ctx, "bench")
				if err != nil {
					b.Fatal(err)
				}
				last = k.Plain
			}
			d.Close()
			b.ResetTimer()
			for b.Loop() {
				d, err := open(dir)
				if err != nil {
					b.Fatal(err)
				}
				recs, err := (APIKeys{d}).List(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if _, ok := gateway.NewKeyRing(recs).Verify(last); !ok {
					b.Fatal("key does not verify")
				}
				d.Close()
			}
		})
	}
}
