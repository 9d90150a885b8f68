package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestRotatingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	r, err := openRotating(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	line := bytes.Repeat([]byte("x"), 39)
	line = append(line, '\n')
	for range 7 { // 280 bytes through a 100-byte limit
		if _, err := r.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	cur, _ := os.ReadFile(path)
	old, _ := os.ReadFile(path + ".1")
	if len(cur) != 40 || len(old) != 80 {
		t.Fatalf("current %d bytes, rotated %d; want 40 and 80", len(cur), len(old))
	}
	for _, p := range []string{path, path + ".1"} {
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v", p, st.Mode().Perm())
		}
	}
	// Reopening continues the current file's size.
	r, _ = openRotating(path, 100)
	if r.size != 40 {
		t.Fatalf("reopened size %d", r.size)
	}
	r.Close()
}
