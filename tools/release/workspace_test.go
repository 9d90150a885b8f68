package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeFiles creates each file (slash path relative to root) with its text.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// need fails the test when a program the test runs is missing: always
// under CI=true, where a missing prerequisite is a broken CI machine.
func need(t *testing.T, prog string) {
	t.Helper()
	if _, err := exec.LookPath(prog); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not on PATH: %v", prog, err)
		}
		t.Skipf("%s is not on PATH", prog)
	}
}

func TestMatchModule(t *testing.T) {
	mods := []string{
		"github.com/unjuno/flm/core",
		"github.com/unjuno/flm/tools",
		"github.com/unjuno/flm/tools/enginefake",
		"github.com/unjuno/flm/engine-ollama",
	}
	for _, c := range []struct{ imp, want string }{
		{"github.com/unjuno/flm/core", "github.com/unjuno/flm/core"},
		{"github.com/unjuno/flm/core/flmerr", "github.com/unjuno/flm/core"},
		{"github.com/unjuno/flm/tools/enginefake", "github.com/unjuno/flm/tools/enginefake"},
		{"github.com/unjuno/flm/tools/enginefake/sub", "github.com/unjuno/flm/tools/enginefake"},
		{"github.com/unjuno/flm/tools/drivertest", "github.com/unjuno/flm/tools"},
		{"github.com/unjuno/flm/tools/enginefakeX", "github.com/unjuno/flm/tools"},
		{"github.com/unjuno/flm/engine-ollama/internal/x", "github.com/unjuno/flm/engine-ollama"},
		{"github.com/unjuno/flm/corex", ""},
		{"net/http", ""},
	} {
		got, ok := matchModule(mods, c.imp)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("matchModule(%s) = %q, %v; want %q", c.imp, got, ok, c.want)
		}
	}
}

func TestModuleImports(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"go.mod":             "module example.com/r/a\n\ngo 1.26.0\n",
		"a.go":               "package a\n\nimport (\n\t\"fmt\"\n\t_ \"example.com/r/b\"\n)\n\nvar _ = fmt.Sprint\n",
		"a_test.go":          "package a\n\nimport \"example.com/r/testkit\"\n\nvar _ = testkit.X\n",
		"a_windows.go":       "package a\n\nimport \"example.com/r/win\"\n",
		"tagged.go":          "//go:build !linux && cgo\n\npackage a\n\nimport \"example.com/r/tagged\"\n",
		"gen.go":             "//go:build ignore\n\npackage main\n\nimport \"example.com/r/generator\"\n",
		"sub/s.go":           "package sub\n\nimport \"example.com/r/sub\"\n",
		"testdata/x.go":      "package x\n\nimport \"example.com/r/testdata\"\n",
		"_old/x.go":          "package x\n\nimport \"example.com/r/underscore\"\n",
		".hidden/x.go":       "package x\n\nimport \"example.com/r/hidden\"\n",
		"nested/go.mod":      "module example.com/r/a/nested\n\ngo 1.26.0\n",
		"nested/n.go":        "package nested\n\nimport \"example.com/r/nested\"\n",
		"notes.txt":          "import \"example.com/r/txt\"\n",
		"sub/deeper/d.go":    "package deeper\n\nimport \"example.com/r/deeper\"\n",
		"sub/deeper/e.go":    "package deeper\n\nimport \"example.com/r/deeper\"\n",
		"vendor/v/vendor.go": "package v\n\nimport \"example.com/r/vendored\"\n",
	})
	got, err := moduleImports(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"example.com/r/b", "example.com/r/deeper", "example.com/r/sub", "example.com/r/tagged",
		"example.com/r/testkit", "example.com/r/win", "fmt",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("imports =\n%q\nwant\n%q", got, want)
	}
}

func TestAnyTags(t *testing.T) {
	// The go command's "all tags" rule: only "ignore" drops a file.
	for _, c := range []struct {
		file string
		keep bool
	}{
		{"//go:build linux", true},
		{"//go:build !linux", true},
		{"//go:build windows && !cgo", true},
		{"//go:build ignore", false},
		{"//go:build !ignore", true},
		{"//go:build ignore && linux", false},
		{"//go:build ignore || linux", true},
	} {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"x.go": c.file + "\n\npackage x\n\nimport \"example.com/m\"\n"})
		got, err := moduleImports(dir)
		if err != nil {
			t.Fatal(err)
		}
		if kept := len(got) == 1; kept != c.keep {
			t.Errorf("%s: file kept = %v, want %v", c.file, kept, c.keep)
		}
	}
}

// fakeRepo writes a workspace of three modules: lib (imported by app's
// code), kit (imported only by app's tests) and app, plus an excluded
// tools module importing all of them.
func fakeRepo(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"go.work": "go 1.26.0\n\nuse (\n\t./app\n\t./lib\n\t./tools\n\t./tools/kit\n)\n",
		"versions.yaml": `module-sets:
  stable:
    version: v1.0.0
    modules: [example.com/r/lib]
  app:
    version: v0.3.0
    modules: [example.com/r/app]
  testkit:
    version: v0.1.0
    modules: [example.com/r/tools/kit]
excluded-modules: [example.com/r/tools]
`,
		"lib/go.mod":       "module example.com/r/lib\n\ngo 1.26.0\n",
		"lib/lib.go":       "// Package lib is a library.\npackage lib\n\n// Greeting is what lib says.\nconst Greeting = \"hello from lib\"\n",
		"tools/kit/go.mod": "module example.com/r/tools/kit\n\ngo 1.26.0\n",
		"tools/kit/kit.go": "// Package kit helps tests.\npackage kit\n\n// Name names the kit.\nconst Name = \"kit\"\n",
		"app/go.mod":       "module example.com/r/app\n\ngo 1.26.0\n",
		"app/main.go":      "// Command app prints lib's greeting.\npackage main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/r/lib\"\n)\n\nfunc main() { fmt.Println(lib.Greeting) }\n",
		"app/main_test.go": "package main\n\nimport (\n\t\"testing\"\n\n\t\"example.com/r/tools/kit\"\n)\n\nfunc TestKit(t *testing.T) {\n\tif kit.Name != \"kit\" {\n\t\tt.Fatal(kit.Name)\n\t}\n}\n",
		"tools/go.mod":     "module example.com/r/tools\n\ngo 1.26.0\n",
		"tools/t.go":       "// Package tools uses everything.\npackage tools\n\nimport (\n\t_ \"example.com/r/lib\"\n\t_ \"example.com/r/tools/kit\"\n)\n",
	})
	return root
}

func TestLoadWorkspaceAndLayout(t *testing.T) {
	root := fakeRepo(t)
	ws, err := loadWorkspace(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []wsModule{
		{"example.com/r/app", "app"}, {"example.com/r/lib", "lib"},
		{"example.com/r/tools", "tools"}, {"example.com/r/tools/kit", "tools/kit"},
	}
	if !reflect.DeepEqual(ws.Modules, want) {
		t.Errorf("modules = %v, want %v", ws.Modules, want)
	}
	v, err := readVersions(filepath.Join(root, "versions.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkLayout(ws, v); err != nil {
		t.Fatal(err)
	}

	// A module in go.work that versions.yaml forgot.
	writeFiles(t, root, map[string]string{
		"extra/go.mod": "module example.com/r/extra\n\ngo 1.26.0\n",
		"go.work":      "go 1.26.0\n\nuse (\n\t./app\n\t./extra\n\t./lib\n\t./tools\n\t./tools/kit\n)\n",
	})
	ws, err = loadWorkspace(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkLayout(ws, v); err == nil || !strings.Contains(err.Error(), "example.com/r/extra (extra) is in go.work but neither") {
		t.Errorf("unlisted module: err = %v", err)
	}

	// A module whose path does not end in its directory: its tag would
	// not be found by the go command.
	writeFiles(t, root, map[string]string{
		"go.work":    "go 1.26.0\n\nuse (\n\t./app\n\t./lib\n\t./tools\n\t./tools/kit\n)\n",
		"lib/go.mod": "module example.com/r/library\n\ngo 1.26.0\n",
	})
	ws, err = loadWorkspace(root)
	if err != nil {
		t.Fatal(err)
	}
	v.Version["example.com/r/library"] = "v1.0.0"
	delete(v.Version, "example.com/r/lib")
	if err := checkLayout(ws, v); err == nil || !strings.Contains(err.Error(), "must end in /lib") {
		t.Errorf("path/dir mismatch: err = %v", err)
	}
}

func TestTiers(t *testing.T) {
	root := fakeRepo(t)
	ws, err := loadWorkspace(root)
	if err != nil {
		t.Fatal(err)
	}
	tiers, err := moduleTiers(ws)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"lib", "tools/kit"}, {"app", "tools"}}
	if !reflect.DeepEqual(tiers, want) {
		t.Errorf("tiers = %v, want %v", tiers, want)
	}

	// The cycle issue 14 ran into: lib's tests import tools, which
	// imports lib.
	writeFiles(t, root, map[string]string{
		"lib/lib_test.go": "package lib\n\nimport _ \"example.com/r/tools\"\n",
	})
	_, err = moduleTiers(ws)
	if err == nil || !strings.Contains(err.Error(), "import cycle between modules") ||
		!strings.Contains(err.Error(), "example.com/r/lib → example.com/r/tools") {
		t.Errorf("cycle: err = %v", err)
	}
}

func TestSiblingImportsUnknownModule(t *testing.T) {
	root := fakeRepo(t)
	ws, err := loadWorkspace(root)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := ws.module("example.com/r/app")
	_, err = siblingImports(ws, self, []string{"example.com/r/gone/pkg", "fmt"})
	if err == nil || !strings.Contains(err.Error(), "imports example.com/r/gone/pkg, which is in no module of go.work") {
		t.Errorf("err = %v", err)
	}
	got, err := siblingImports(ws, self, []string{"example.com/r/app/internal/x", "example.com/r/lib", "example.com/r/tools/kit", "fmt"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"example.com/r/lib", "example.com/r/tools/kit"}; !reflect.DeepEqual(got, want) {
		t.Errorf("siblings = %v, want %v", got, want)
	}
}
