package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

func isFLM(p string) bool { return strings.HasPrefix(p, "example.com/r/") }

func TestSyncGoMod(t *testing.T) {
	in := `module example.com/r/app

go 1.26.0

require (
	example.com/other v1.2.0
	example.com/r/lib v0.9.0 // indirect
)

require (
	example.com/r/kit v0.0.1 // indirect
	example.com/r/old v0.5.0 // indirect
	example.com/x v0.1.0 // indirect
)
`
	all := map[string]string{"example.com/r/lib": "v1.0.0", "example.com/r/kit": "v0.1.0", "example.com/r/old": "v0.6.0"}
	need := map[string]string{"example.com/r/lib": "v1.0.0"}
	out, err := syncGoMod("go.mod", []byte(in), need, all, isFLM)
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", out, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range f.Require {
		ind := ""
		if r.Indirect {
			ind = " indirect"
		}
		got[r.Mod.Path] = r.Mod.Version + ind
	}
	want := map[string]string{
		"example.com/other": "v1.2.0",
		"example.com/r/lib": "v1.0.0",          // imported: direct, at its release version
		"example.com/r/kit": "v0.1.0 indirect", // kept for tidy to judge, moved to its version
		"example.com/r/old": "v0.6.0 indirect",
		"example.com/x":     "v0.1.0 indirect",
	}
	if len(got) != len(want) {
		t.Errorf("requires = %v, want %v", got, want)
	}
	for p, v := range want {
		if got[p] != v {
			t.Errorf("%s = %q, want %q\n%s", p, got[p], v, out)
		}
	}
	// Running it again changes nothing.
	again, err := syncGoMod("go.mod", out, need, all, isFLM)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, out) {
		t.Errorf("second sync changed go.mod:\n%s\n---\n%s", out, again)
	}

	// A module with no requires gets a plain require line.
	out, err = syncGoMod("go.mod", []byte("module example.com/r/e\n\ngo 1.26.0\n"), need, all, isFLM)
	if err != nil {
		t.Fatal(err)
	}
	if want := "module example.com/r/e\n\ngo 1.26.0\n\nrequire example.com/r/lib v1.0.0\n"; string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestSyncGoModRefuses(t *testing.T) {
	all := map[string]string{"example.com/r/lib": "v1.0.0"}
	_, err := syncGoMod("go.mod", []byte("module example.com/r/app\n\ngo 1.26.0\n\nreplace example.com/r/lib => ../lib\n"), nil, all, isFLM)
	if err == nil || !strings.Contains(err.Error(), "replaces example.com/r/lib: remove it") {
		t.Errorf("sibling replace: err = %v", err)
	}
	// A replace of a third-party module is the module's own business.
	if _, err := syncGoMod("go.mod", []byte("module example.com/r/app\n\ngo 1.26.0\n\nreplace example.com/x => example.com/y v1.0.0\n"), nil, all, isFLM); err != nil {
		t.Errorf("third-party replace: %v", err)
	}
	_, err = syncGoMod("go.mod", []byte("module example.com/r/app\n\ngo 1.26.0\n\nrequire example.com/r/tools v0.0.0\n"), nil, all, isFLM)
	if err == nil || !strings.Contains(err.Error(), "requires example.com/r/tools, which is never released") {
		t.Errorf("excluded require: err = %v", err)
	}
}

func TestSyncGoWork(t *testing.T) {
	in := `go 1.26.0

use (
	./app
	./lib
)

replace example.com/r/lib => ./lib

replace example.com/r/app v0.0.1 => ./app

replace example.com/x v1.0.0 => ../fork/x
`
	lines := []release{
		{Path: "example.com/r/tools/kit", Version: "v0.1.0", Dir: "tools/kit"},
		{Path: "example.com/r/app", Version: "v0.3.0", Dir: "app"},
		{Path: "example.com/r/lib", Version: "v1.0.0", Dir: "lib"},
	}
	out, err := syncGoWork("go.work", []byte(in), lines, isFLM)
	if err != nil {
		t.Fatal(err)
	}
	want := `go 1.26.0

use (
	./app
	./lib
)

replace example.com/x v1.0.0 => ../fork/x

// Sibling modules at their versions.yaml versions, resolved from this
// checkout (tools/release sync writes this block; docs/adr/0004-module-boundary.md).
replace (
	example.com/r/app v0.3.0 => ./app
	example.com/r/lib v1.0.0 => ./lib
	example.com/r/tools/kit v0.1.0 => ./tools/kit
)
`
	if string(out) != want {
		t.Errorf("go.work =\n%s\nwant\n%s", out, want)
	}
	again, err := syncGoWork("go.work", out, lines, isFLM)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, out) {
		t.Errorf("second sync changed go.work:\n%s", again)
	}
}

// goEnv is the environment of a go command that must not touch the
// network or the real module cache.
func goEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	// os/exec keeps the last of duplicate variables, so these override
	// the caller's environment.
	env := append(os.Environ(), "GOMODCACHE="+t.TempDir(), "GOFLAGS=-modcacherw", "GOTOOLCHAIN=local", "GOPROXY=off")
	return append(env, extra...)
}

// runIn runs a command in dir with env and returns its combined output;
// a failure fails the test.
func runIn(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

func TestSyncRepoWorkspaceBuildsOffline(t *testing.T) {
	// The point of the pinned go.work replaces: after sync, every go.mod
	// requires its siblings at versions no proxy has, and the workspace
	// still builds, tests and lists its module graph with GOPROXY=off.
	need(t, "go")
	root := fakeRepo(t)
	ws, err := loadWorkspace(root)
	if err != nil {
		t.Fatal(err)
	}
	v, err := readVersions(filepath.Join(root, "versions.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var report bytes.Buffer
	if err := syncRepo(ws, v, &report); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"app/go.mod", "tools/go.mod", "go.work"} {
		if !strings.Contains(report.String(), filepath.Join(root, filepath.FromSlash(f))) {
			t.Errorf("report does not name %s:\n%s", f, report.String())
		}
	}
	app, err := os.ReadFile(filepath.Join(root, "app", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	// kit is imported only by app's tests: it is required all the same.
	for _, l := range []string{"example.com/r/lib v1.0.0", "example.com/r/tools/kit v0.1.0"} {
		if !strings.Contains(string(app), l) {
			t.Errorf("app/go.mod lacks %q:\n%s", l, app)
		}
	}
	if lib, _ := os.ReadFile(filepath.Join(root, "lib", "go.mod")); strings.Contains(string(lib), "require") {
		t.Errorf("lib imports no sibling but got a require:\n%s", lib)
	}

	env := goEnv(t, "GOWORK="+filepath.Join(root, "go.work"))
	runIn(t, filepath.Join(root, "app"), env, "go", "build", "./...")
	runIn(t, filepath.Join(root, "app"), env, "go", "test", "./...")
	runIn(t, filepath.Join(root, "tools"), env, "go", "vet", "./...")
	all := runIn(t, filepath.Join(root, "app"), env, "go", "list", "-m", "all")
	// lib is a workspace module (listed without a version), not a
	// download of v1.0.0.
	if !slices.Contains(strings.Split(all, "\n"), "example.com/r/lib") {
		t.Errorf("go list -m all does not take lib from the checkout:\n%s", all)
	}
	if got := runIn(t, filepath.Join(root, "app"), env, "go", "run", "."); got != "hello from lib\n" {
		t.Errorf("app printed %q", got)
	}

	// Sync is idempotent.
	report.Reset()
	if err := syncRepo(ws, v, &report); err != nil {
		t.Fatal(err)
	}
	if report.Len() != 0 {
		t.Errorf("second sync changed files:\n%s", report.String())
	}
}
