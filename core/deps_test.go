package core

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStdlibOnly keeps core free of infrastructure: it may import the
// standard library and itself, nothing else (not gorm, sqlite, echo, lego …),
// directly or transitively. The test code of core's packages is included.
func TestStdlibOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test", "-f", "{{if not .Standard}}{{.ImportPath}}\n{{end}}", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var pkgs int
	for _, p := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkgs++
		p, _, _ = strings.Cut(p, " ") // "pkg [pkg.test]" variants of test builds
		p = strings.TrimSuffix(p, ".test")
		if p != "github.com/unjuno/flm/core" && !strings.HasPrefix(p, "github.com/unjuno/flm/core/") {
			t.Errorf("core depends on %s; core may import the standard library only", p)
		}
	}
	if pkgs < 5 {
		t.Fatalf("go list found only %d core packages; the check is not looking at core", pkgs)
	}
}
