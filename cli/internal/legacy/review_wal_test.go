package legacy_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/unjuno/flm/cli/internal/legacy"
	"github.com/unjuno/flm/cli/internal/legacy/legacytest"
)

// TestReviewWALPrototypeFile: the prototype (sqlx) keeps flm.db in WAL
// mode. A file whose latest rows are still in flm.db-wal (the prototype
// running, or killed) must be read with those rows, or refused — never
// read as an older state. Records what Read does next to the file.
func TestReviewWALPrototypeFile(t *testing.T) {
	f := build(t, legacytest.Options{APIs: []legacytest.API{{ID: "api-1", Name: "chat", Model: "m", Port: 8081, Keys: 1}}})
	db := openRW(t, f.Path)
	if _, err := db.Exec(`PRAGMA journal_mode = WAL`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA wal_autocheckpoint = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO api_keys VALUES ('k-wal', 'api-1', '` + strings.Repeat("ef", 32) + `', x'00', '2025-03-01T00:00:00Z', '2025-03-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(f.Path + "-wal"); err != nil || st.Size() == 0 {
		t.Fatalf("no WAL: %v", err)
	}
	snap, err := legacy.Read(context.Background(), f.Path, legacy.Options{})
	if err != nil {
		t.Logf("Read of a live WAL file refused: %v", err)
		return
	}
	if len(snap.Keys) != 2 {
		t.Fatalf("Read saw %d keys; the WAL holds 2", len(snap.Keys))
	}
}
