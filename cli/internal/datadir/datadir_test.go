package datadir

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/unjuno/flm/core/flmerr"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestResolvePrecedence(t *testing.T) {
	env := envOf(map[string]string{"FLM_DATA_DIR": "/env/flm", "HOME": "/home/u", "XDG_DATA_HOME": "/xdg"})
	if d, _ := Resolve("/flag/flm", env); d != "/flag/flm" {
		t.Errorf("flag: %s", d)
	}
	if d, _ := Resolve("", env); d != "/env/flm" {
		t.Errorf("env: %s", d)
	}
	cases := []struct {
		goos string
		env  map[string]string
		want string
	}{
		{"linux", map[string]string{"HOME": "/home/u", "XDG_DATA_HOME": "/xdg"}, "/xdg/flm"},
		{"linux", map[string]string{"HOME": "/home/u", "XDG_DATA_HOME": "relative"}, "/home/u/.local/share/flm"},
		{"darwin", map[string]string{"HOME": "/Users/u"}, "/Users/u/Library/Application Support/flm"},
		{"windows", map[string]string{"LOCALAPPDATA": `C:\Users\u\AppData\Local`}, filepath.Join(`C:\Users\u\AppData\Local`, "flm")},
	}
	for _, c := range cases {
		if got, err := osDefault(c.goos, envOf(c.env)); got != c.want || err != nil {
			t.Errorf("%s %v: %s, %v; want %s", c.goos, c.env, got, err, c.want)
		}
	}
	if _, err := osDefault("linux", envOf(nil)); !flmerr.Is(err, flmerr.IOError) {
		t.Errorf("no HOME: %v", err)
	}
}

func TestEnsure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "flm")
	if err := Ensure(dir); err != nil {
		t.Fatal(err)
	}
	for _, s := range append([]string{""}, Subdirs...) {
		st, err := os.Stat(filepath.Join(dir, s))
		if err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v", s, st.Mode(), err)
		}
	}
	// A data dir below a regular file cannot exist: clear IO_ERROR naming it.
	file := filepath.Join(t.TempDir(), "file")
	_ = os.WriteFile(file, nil, 0o600)
	if err := Ensure(filepath.Join(file, "flm")); !flmerr.Is(err, flmerr.IOError) {
		t.Fatalf("Ensure under a file = %v", err)
	}
}
