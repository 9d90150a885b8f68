package legacy_test

import (
	"database/sql"
	"testing"
)

func openRW(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func execSQL(t *testing.T, path, stmt string) {
	t.Helper()
	if _, err := openRW(t, path).Exec(stmt); err != nil {
		t.Fatal(err)
	}
}
