package capture

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/unjuno/flm/core/translate"
)

var update = flag.Bool("update", false, "rewrite the golden files of the translate packages")

// Golden compares got with testdata/golden/<name> of the calling package's
// directory, or rewrites the file with -update.
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update once to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it after a deliberate change)\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

// Env is a deterministic translate.Env: ids count up per prefix, the clock
// stands at 2026-12-02T15:04:40Z and advances 1 ms per reading.
func Env() translate.Env {
	n := map[string]int{}
	now := time.Date(2026, 12, 2, 15, 4, 40, 0, time.UTC)
	return translate.Env{
		NewID: func(prefix string) string {
			n[prefix]++
			return fmt.Sprintf("%stest%04d", prefix, n[prefix])
		},
		Now: func() time.Time {
			now = now.Add(time.Millisecond)
			return now
		},
	}
}
