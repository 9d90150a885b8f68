package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/gateway"
)

// Keys made before migration 2 keep working after it, for every model,
// without an own limit or expiry; and they can then be scoped.
func TestKeyScopeMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	saved := migrations[Security]
	migrations[Security] = saved[:1]
	func() {
		defer func() { migrations[Security] = saved }()
		d := open(t, dir, Security)
		if d.Version() != 1 {
			t.Fatalf("version %d, want the old schema 1", d.Version())
		}
		for i, plain := range []string{"flm_" + fmt.Sprintf("%043d", 1), "flm_" + fmt.Sprintf("%043d", 2)} {
			if err := d.gdb.Exec("INSERT INTO api_keys (id, label, hash, created_at) VALUES (?, ?, ?, ?)",
				fmt.Sprint("key_old", i), "old", apikey.Hash(plain), time.Now().UnixMilli()).Error; err != nil {
				t.Fatal(err)
			}
		}
		d.Close()
	}()

	d := open(t, dir, Security)
	if d.Version() != SchemaVersion(Security) || d.ReadOnly() != nil {
		t.Fatalf("after migrating: version %d, read-only %v", d.Version(), d.ReadOnly())
	}
	recs, err := (APIKeys{d}).List(ctx)
	if err != nil || len(recs) != 2 {
		t.Fatalf("List = %+v, %v", recs, err)
	}
	for _, r := range recs {
		if r.Models != nil || r.RPM != 0 || r.ExpiresAt != nil {
			t.Fatalf("an old key got a scope: %+v", r)
		}
	}
	if _, ok := gateway.NewKeyRing(recs).Verify("flm_" + fmt.Sprintf("%043d", 1)); !ok {
		t.Fatal("an old key no longer verifies")
	}
	svc := &apikey.Service{Store: APIKeys{d}}
	rpm := 9
	got, err := svc.Update(ctx, "key_old0", apikey.UpdateOptions{Models: &[]string{"flm://ollama/*"}, RPM: &rpm})
	if err != nil || len(got.Models) != 1 || got.RPM != 9 {
		t.Fatalf("scoping an old key = %+v, %v", got, err)
	}
}

// The table refuses what no writer produces, so that a scope can only be
// read back as written: no empty array (which a reader could take for
// "every model"), no other JSON, no negative limit.
func TestKeyScopeColumnsChecked(t *testing.T) {
	ctx := context.Background()
	d := open(t, t.TempDir(), Security)
	svc := &apikey.Service{Store: APIKeys{d}}
	iss, err := svc.CreateWith(ctx, apikey.CreateOptions{Label: "kid", Models: []string{"flm://ollama/llama3*"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range []string{
		`models = '[]'`, `models = '"flm://*"'`, `models = 'flm://*'`, `models = '{}'`, `models = '[1'`, `rpm = -1`, `rpm = NULL`,
	} {
		if err := d.gdb.Exec("UPDATE api_keys SET "+set+" WHERE id = ?", iss.ID).Error; err == nil {
			t.Errorf("the table accepted %s", set)
		}
	}
	got, err := (APIKeys{d}).Get(ctx, iss.ID)
	if err != nil || len(got.Models) != 1 || got.AllowsModel("flm://vllm/qwen") {
		t.Fatalf("after refused writes: %+v, %v", got, err)
	}

	// A value the table lets through but that is no list of scopes (here
	// numbers) is an error when read, never "every model".
	if err := d.gdb.Exec(`UPDATE api_keys SET models = '[1,2]' WHERE id = ?`, iss.ID).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := (APIKeys{d}).ByHash(ctx, iss.Hash); !flmerr.Is(err, flmerr.DBError) {
		t.Fatalf("ByHash of a damaged scope = %v, want DB_ERROR", err)
	}
	if recs, err := (APIKeys{d}).List(ctx); err == nil {
		t.Fatalf("List with a damaged scope = %+v; want an error", recs)
	}
	// The key can still be revoked.
	if _, err := svc.Revoke(ctx, iss.ID); err != nil {
		t.Fatalf("revoking a key with a damaged scope: %v", err)
	}
}
