package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestRepoVersionsFile(t *testing.T) {
	// The repo's own versions.yaml is what every release reads: it must
	// parse, and it holds the versions the issue and RELEASING.md promise.
	v, err := readVersions(filepath.Join("..", "..", "versions.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"github.com/unjuno/flm/core":             "v1.0.0",
		"github.com/unjuno/flm/cli":              "v1.0.0",
		"github.com/unjuno/flm/proxy":            "v0.6.0",
		"github.com/unjuno/flm/engine-ollama":    "v0.6.0",
		"github.com/unjuno/flm/engine-vllm":      "v0.6.0",
		"github.com/unjuno/flm/engine-lmstudio":  "v0.6.0",
		"github.com/unjuno/flm/engine-llamacpp":  "v0.6.0",
		"github.com/unjuno/flm/tools/enginefake": "v0.1.0",
	}
	if len(v.Version) != len(want) {
		t.Errorf("released modules = %v, want %v", v.Version, want)
	}
	for p, ver := range want {
		if v.Version[p] != ver {
			t.Errorf("%s = %q, want %q", p, v.Version[p], ver)
		}
	}
	if !v.Excluded["github.com/unjuno/flm/tools"] {
		t.Errorf("tools is not in excluded-modules")
	}
	if v.Set["github.com/unjuno/flm/core"] != "stable-v1" {
		t.Errorf("core is in set %q, want stable-v1", v.Set["github.com/unjuno/flm/core"])
	}
}

func TestParseVersions(t *testing.T) {
	ok := `
module-sets:
  one:
    version: v1.2.3
    modules: [example.com/r/a, example.com/r/b]
  two:
    version: v0.1.0-rc.1
    modules: [example.com/r/c]
  three:
    version: v2.0.0
    modules: [example.com/r/d/v2]
excluded-modules: [example.com/r/tools]
`
	v, err := parseVersions([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(v.released(), " "); got != "example.com/r/a example.com/r/b example.com/r/c example.com/r/d/v2" {
		t.Errorf("released = %s", got)
	}
	if v.Version["example.com/r/c"] != "v0.1.0-rc.1" || v.Set["example.com/r/b"] != "one" || !v.Excluded["example.com/r/tools"] {
		t.Errorf("parsed %+v", v)
	}

	bad := []struct{ name, yaml, want string }{
		{"no sets", "excluded-modules: [a.com/x]\n", "no module-sets"},
		{"typo key", "module_sets:\n  a:\n    version: v1.0.0\n    modules: [a.com/x]\n", "module_sets"},
		{"not semver", "module-sets:\n  a:\n    version: 1.0.0\n    modules: [a.com/x]\n", "not a canonical semantic version"},
		{"short semver", "module-sets:\n  a:\n    version: v1.0\n    modules: [a.com/x]\n", "not a canonical semantic version"},
		{"build metadata", "module-sets:\n  a:\n    version: v1.0.0+x\n    modules: [a.com/x]\n", "not a canonical semantic version"},
		{"empty set", "module-sets:\n  a:\n    version: v1.0.0\n", "no modules"},
		{"twice", "module-sets:\n  a:\n    version: v1.0.0\n    modules: [a.com/x]\n  b:\n    version: v0.1.0\n    modules: [a.com/x]\n", "in both module sets a and b"},
		{"v2 without suffix", "module-sets:\n  a:\n    version: v2.0.0\n    modules: [a.com/x]\n", "v2"},
		{"released and excluded", "module-sets:\n  a:\n    version: v1.0.0\n    modules: [a.com/x]\nexcluded-modules: [a.com/x]\n", "both in module set a and in excluded-modules"},
		{"bad path", "module-sets:\n  a:\n    version: v1.0.0\n    modules: [\"a.com/x y\"]\n", "invalid"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseVersions([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestTagFor(t *testing.T) {
	for _, c := range []struct{ dir, vers, want string }{
		{"core", "v1.0.0", "core/v1.0.0"},
		{"tools/enginefake", "v0.1.0", "tools/enginefake/v0.1.0"},
		{".", "v1.0.0", "v1.0.0"},
	} {
		if got := tagFor(c.dir, c.vers); got != c.want {
			t.Errorf("tagFor(%q, %q) = %q, want %q", c.dir, c.vers, got, c.want)
		}
	}
}
