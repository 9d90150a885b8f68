package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAddToList(t *testing.T) {
	file := filepath.Join(t.TempDir(), "list")
	for _, v := range []string{"v1.10.0", "v1.9.0", "v1.10.0", "v0.1.0", "v1.10.0-rc.1"} {
		if err := addToList(file, v); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := "v0.1.0\nv1.9.0\nv1.10.0-rc.1\nv1.10.0\n"; string(got) != want {
		t.Errorf("list = %q, want %q", got, want)
	}
}

// gitEnv gives git an identity for commits and tags made by the test.
func gitEnv(t *testing.T) {
	t.Setenv("GIT_AUTHOR_NAME", "release test")
	t.Setenv("GIT_AUTHOR_EMAIL", "release-test@invalid")
	t.Setenv("GIT_COMMITTER_NAME", "release test")
	t.Setenv("GIT_COMMITTER_EMAIL", "release-test@invalid")
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
}

// sumLines are the go.sum lines of entries.
func sumLines(entries ...proxyEntry) string {
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.Path + " " + e.Version + " " + e.Sum + "\n")
		b.WriteString(e.Path + " " + e.Version + "/go.mod " + e.GoModSum + "\n")
	}
	return b.String()
}

func entryFor(t *testing.T, entries []proxyEntry, path string) proxyEntry {
	t.Helper()
	for _, e := range entries {
		if e.Path == path {
			return e
		}
	}
	t.Fatalf("no proxy entry for %s in %v", path, entries)
	return proxyEntry{}
}

// TestReleaseThroughFileProxy runs the whole release on a tiny repo: sync,
// go.sum lines from a tree proxy, commit, tag, a proxy made from the
// tags; then the go command, outside any workspace and with nothing but
// that proxy, fetches the modules, checks them against the hashes, builds
// a scratch module that imports the library and installs the app at its
// version.
func TestReleaseThroughFileProxy(t *testing.T) {
	need(t, "go")
	need(t, "git")
	gitEnv(t)
	root := fakeRepo(t)
	runIn(t, root, os.Environ(), "git", "init", "-q", "-b", "main")

	ws, err := loadWorkspace(root)
	if err != nil {
		t.Fatal(err)
	}
	v, err := readVersions(filepath.Join(root, "versions.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkLayout(ws, v); err != nil {
		t.Fatal(err)
	}
	if err := syncRepo(ws, v, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	rels := releases(ws, v)

	// Tier 0 (lib, kit) zipped from the tree gives the hashes app's and
	// tools' go.sum need.
	treeProxy := t.TempDir()
	treeEntries, err := writeProxy(treeProxy, root, rels, true)
	if err != nil {
		t.Fatal(err)
	}
	tier0 := sumLines(entryFor(t, treeEntries, "example.com/r/lib"), entryFor(t, treeEntries, "example.com/r/tools/kit"))
	writeFiles(t, root, map[string]string{"app/go.sum": tier0, "tools/go.sum": tier0})

	runIn(t, root, os.Environ(), "git", "add", "-A")
	runIn(t, root, os.Environ(), "git", "commit", "-q", "-m", "release")
	var out bytes.Buffer
	if err := tagRepo(root, rels, &out); err != nil {
		t.Fatal(err)
	}
	if want := "tagged  app/v0.3.0\ntagged  lib/v1.0.0\ntagged  tools/kit/v0.1.0\n"; out.String() != want {
		t.Errorf("tag output = %q, want %q", out.String(), want)
	}
	if got := runIn(t, root, os.Environ(), "git", "cat-file", "-t", "lib/v1.0.0"); got != "tag\n" {
		t.Errorf("lib/v1.0.0 is a %q, want an annotated tag", got)
	}

	proxy := t.TempDir()
	entries, err := writeProxy(proxy, root, rels, false)
	if err != nil {
		t.Fatal(err)
	}
	// A zip made from the tag and one made from the same clean tree are
	// the same module: same hash.
	for _, p := range []string{"example.com/r/lib", "example.com/r/tools/kit"} {
		if a, b := entryFor(t, entries, p), entryFor(t, treeEntries, p); a.Sum != b.Sum || a.GoModSum != b.GoModSum {
			t.Errorf("%s: tag zip %s %s, tree zip %s %s", p, a.Sum, a.GoModSum, b.Sum, b.GoModSum)
		}
	}

	// The file layout of the GOPROXY protocol.
	vdir := filepath.Join(proxy, "example.com", "r", "lib", "@v")
	if list, _ := os.ReadFile(filepath.Join(vdir, "list")); string(list) != "v1.0.0\n" {
		t.Errorf("list = %q", list)
	}
	mod, _ := os.ReadFile(filepath.Join(vdir, "v1.0.0.mod"))
	libMod, _ := os.ReadFile(filepath.Join(root, "lib", "go.mod"))
	if !bytes.Equal(mod, libMod) {
		t.Errorf("v1.0.0.mod = %q, want lib/go.mod %q", mod, libMod)
	}
	var info struct{ Version, Time string }
	data, _ := os.ReadFile(filepath.Join(vdir, "v1.0.0.info"))
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatalf("info %q: %v", data, err)
	}
	if ts, err := time.Parse(time.RFC3339, info.Time); info.Version != "v1.0.0" || err != nil || time.Since(ts) > time.Hour {
		t.Errorf("info = %+v (%v)", info, err)
	}
	if _, err := os.Stat(filepath.Join(proxy, "example.com", "r", "tools", "@v")); err == nil {
		t.Errorf("the excluded tools module is in the proxy")
	}

	// Outside the workspace, from the proxy only.
	env := goEnv(t, "GOWORK=off", "GOPROXY=file://"+filepath.ToSlash(proxy), "GONOSUMDB=example.com", "GOBIN="+t.TempDir())
	scratch := t.TempDir()
	runIn(t, scratch, env, "go", "mod", "init", "example.com/scratch")
	writeFiles(t, scratch, map[string]string{
		"main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/r/lib\"\n)\n\nfunc main() { fmt.Println(lib.Greeting) }\n",
	})
	runIn(t, scratch, env, "go", "get", "example.com/r/lib@v1.0.0")
	if got := runIn(t, scratch, env, "go", "run", "."); got != "hello from lib\n" {
		t.Errorf("scratch printed %q", got)
	}
	sum, _ := os.ReadFile(filepath.Join(scratch, "go.sum"))
	if lib := entryFor(t, entries, "example.com/r/lib"); !strings.Contains(string(sum), sumLines(lib)) {
		t.Errorf("scratch go.sum =\n%s\nwant the lines\n%s", sum, sumLines(lib))
	}

	runIn(t, scratch, env, "go", "install", "example.com/r/app@v0.3.0")
	var gobin string
	for _, e := range env {
		if b, ok := strings.CutPrefix(e, "GOBIN="); ok {
			gobin = b
		}
	}
	bin := filepath.Join(gobin, "app")
	if got := runIn(t, scratch, env, bin); got != "hello from lib\n" {
		t.Errorf("installed app printed %q", got)
	}
	vm := runIn(t, scratch, env, "go", "version", "-m", bin)
	for _, want := range []string{"mod\texample.com/r/app\tv0.3.0", "dep\texample.com/r/lib\tv1.0.0\t" + entryFor(t, entries, "example.com/r/lib").Sum} {
		if !strings.Contains(vm, want) {
			t.Errorf("go version -m lacks %q:\n%s", want, vm)
		}
	}
}

func TestTagRepoRefusals(t *testing.T) {
	need(t, "git")
	gitEnv(t)
	root := fakeRepo(t)
	runIn(t, root, os.Environ(), "git", "init", "-q", "-b", "main")
	runIn(t, root, os.Environ(), "git", "add", "-A")
	runIn(t, root, os.Environ(), "git", "commit", "-q", "-m", "one")
	rels := []release{{Path: "example.com/r/lib", Dir: "lib", Version: "v1.0.0"}}
	var out bytes.Buffer
	if err := tagRepo(root, rels, &out); err != nil {
		t.Fatal(err)
	}
	// Tagging the same commit again keeps the tag.
	out.Reset()
	if err := tagRepo(root, rels, &out); err != nil || out.String() != "exists  lib/v1.0.0\n" {
		t.Errorf("re-tag: %v, %q", err, out.String())
	}
	// Uncommitted changes to tracked files are refused.
	writeFiles(t, root, map[string]string{"lib/lib.go": "package lib\n\nconst Greeting = \"changed\"\n"})
	err := tagRepo(root, rels, &out)
	if err == nil || !strings.Contains(err.Error(), "uncommitted changes") || !strings.Contains(err.Error(), "lib/lib.go") {
		t.Errorf("dirty tree: err = %v", err)
	}
	// A released version never moves to another commit.
	runIn(t, root, os.Environ(), "git", "commit", "-q", "-am", "two")
	err = tagRepo(root, rels, &out)
	if err == nil || !strings.Contains(err.Error(), "tag lib/v1.0.0 already exists on commit") {
		t.Errorf("moved tag: err = %v", err)
	}
}

func TestRunList(t *testing.T) {
	root := fakeRepo(t)
	var stdout, stderr bytes.Buffer
	if err := run([]string{"-root", root, "list"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	want := "app example.com/r/app v0.3.0 app/v0.3.0\n" +
		"lib example.com/r/lib v1.0.0 lib/v1.0.0\n" +
		"tools/kit example.com/r/tools/kit v0.1.0 tools/kit/v0.1.0\n"
	if stdout.String() != want {
		t.Errorf("list =\n%s\nwant\n%s", stdout.String(), want)
	}
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"bogus"}, {"sync", "extra"}, {"modproxy"}, {"modproxy", "-out", "x", "y"}} {
		var stdout, stderr bytes.Buffer
		err := run(args, &stdout, &stderr)
		if _, ok := err.(usageError); !ok {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
	// A repo whose go.work and versions.yaml disagree is refused before
	// any file is touched.
	root := fakeRepo(t)
	writeFiles(t, root, map[string]string{"versions.yaml": "module-sets:\n  a:\n    version: v1.0.0\n    modules: [example.com/r/lib]\n"})
	before, _ := os.ReadFile(filepath.Join(root, "go.work"))
	var stdout, stderr bytes.Buffer
	err := run([]string{"-root", root, "sync"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "neither in a module set nor in excluded-modules") {
		t.Errorf("err = %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(root, "go.work")); !bytes.Equal(before, after) {
		t.Errorf("go.work changed on a refused sync")
	}
}
