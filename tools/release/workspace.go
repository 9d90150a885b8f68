package main

import (
	"fmt"
	"go/build/constraint"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/modfile"
)

// wsModule is one module of the go.work workspace.
type wsModule struct {
	Path string // module path, e.g. github.com/unjuno/flm/core
	Dir  string // slash-separated directory relative to the repo root, e.g. "tools/enginefake"
}

// workspace is the repo's go.work with the module path of each directory
// it uses.
type workspace struct {
	Root    string     // absolute repo root (the directory holding go.work)
	Modules []wsModule // sorted by Path
}

// loadWorkspace reads root/go.work and the go.mod of every module it uses.
func loadWorkspace(root string) (*workspace, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(root, "go.work")
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	wf, err := modfile.ParseWork(file, data, nil)
	if err != nil {
		return nil, err
	}
	ws := &workspace{Root: root}
	for _, u := range wf.Use {
		dir := path.Clean(filepath.ToSlash(u.Path))
		if path.IsAbs(dir) || dir == ".." || strings.HasPrefix(dir, "../") {
			return nil, fmt.Errorf("go.work: use %s: only directories inside the repo can be released", u.Path)
		}
		mp, err := modulePath(filepath.Join(root, filepath.FromSlash(dir), "go.mod"))
		if err != nil {
			return nil, err
		}
		ws.Modules = append(ws.Modules, wsModule{Path: mp, Dir: dir})
	}
	slices.SortFunc(ws.Modules, func(a, b wsModule) int { return strings.Compare(a.Path, b.Path) })
	return ws, nil
}

// modulePath reads the module path declared by a go.mod file.
func modulePath(gomod string) (string, error) {
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	mp := modfile.ModulePath(data)
	if mp == "" {
		return "", fmt.Errorf("%s: no module directive", gomod)
	}
	return mp, nil
}

// module returns the workspace module with module path p.
func (ws *workspace) module(p string) (wsModule, bool) {
	for _, m := range ws.Modules {
		if m.Path == p {
			return m, true
		}
	}
	return wsModule{}, false
}

// paths lists the module paths of the workspace.
func (ws *workspace) paths() []string {
	out := make([]string, len(ws.Modules))
	for i, m := range ws.Modules {
		out[i] = m.Path
	}
	return out
}

// checkLayout checks that versions.yaml and go.work agree: each workspace
// module is released or excluded, each released module is in the
// workspace, and each module path is the repo's path plus the module's
// directory (so that its tag "<dir>/<version>" is the one the go command
// looks for).
func checkLayout(ws *workspace, v *versions) error {
	repoPath := ""
	for _, m := range ws.Modules {
		_, rel := v.Version[m.Path]
		if !rel && !v.Excluded[m.Path] {
			return fmt.Errorf("module %s (%s) is in go.work but neither in a module set nor in excluded-modules of versions.yaml", m.Path, m.Dir)
		}
		rp := m.Path
		if m.Dir != "." {
			var ok bool
			rp, ok = strings.CutSuffix(m.Path, "/"+m.Dir)
			if !ok {
				return fmt.Errorf("module %s is in directory %s: its path must end in /%s for its tags to be found", m.Path, m.Dir, m.Dir)
			}
		}
		if repoPath == "" {
			repoPath = rp
		} else if rp != repoPath {
			return fmt.Errorf("module %s (%s) is not under the repo path %s", m.Path, m.Dir, repoPath)
		}
	}
	for _, p := range v.released() {
		if _, ok := ws.module(p); !ok {
			return fmt.Errorf("module %s is in versions.yaml but not in go.work", p)
		}
	}
	return nil
}

// matchModule returns the module of importPath among mods: the longest
// module path that is importPath or a path prefix of it ("a/b/c" is in
// module "a/b", not in "a/bc"), so that tools/enginefake/x belongs to
// tools/enginefake, not to tools.
func matchModule(mods []string, importPath string) (string, bool) {
	best := ""
	for _, m := range mods {
		if (importPath == m || strings.HasPrefix(importPath, m+"/")) && len(m) > len(best) {
			best = m
		}
	}
	return best, best != ""
}

// moduleImports lists, sorted and without duplicates, the import paths of
// every Go file of the module in dir, tests included, under every build
// constraint except "ignore" (the files `go mod tidy` considers). It skips
// testdata, vendor, directories whose name starts with "." or "_", and
// nested modules.
func moduleImports(dir string) ([]string, error) {
	seen := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == dir {
				return nil
			}
			name := d.Name()
			if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir // a nested module
			}
			return nil
		}
		name := d.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || !d.Type().IsRegular() {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		for _, cg := range f.Comments {
			if cg.Pos() >= f.Package {
				break
			}
			for _, c := range cg.List {
				if !constraint.IsGoBuild(c.Text) {
					continue
				}
				expr, err := constraint.Parse(c.Text)
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				if !anyTags(expr, true) {
					return nil
				}
			}
		}
		for _, is := range f.Imports {
			ip, err := strconv.Unquote(is.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			seen[ip] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for ip := range seen {
		out = append(out, ip)
	}
	slices.Sort(out)
	return out, nil
}

// anyTags evaluates a build constraint the way the go command does when
// it considers all build tags (cmd/go/internal/imports): every tag but
// "ignore" is taken to have whichever value keeps the file (prefer), so
// "linux", "!linux" and "windows && !cgo" all keep it, and "ignore" drops it.
func anyTags(x constraint.Expr, prefer bool) bool {
	switch x := x.(type) {
	case *constraint.TagExpr:
		if x.Tag == "ignore" {
			return false
		}
		return prefer
	case *constraint.NotExpr:
		return !anyTags(x.X, !prefer)
	case *constraint.AndExpr:
		return anyTags(x.X, prefer) && anyTags(x.Y, prefer)
	case *constraint.OrExpr:
		return anyTags(x.X, prefer) || anyTags(x.Y, prefer)
	}
	return false
}

// siblingImports maps the imports of module self to the other workspace
// modules they belong to: the siblings self needs, sorted. An import
// under the repo's path prefix that no workspace module holds is an error
// (a package of a module that is not in go.work).
func siblingImports(ws *workspace, self wsModule, imports []string) ([]string, error) {
	mods := ws.paths()
	prefix := commonPrefix(mods)
	seen := map[string]bool{}
	for _, ip := range imports {
		m, ok := matchModule(mods, ip)
		if !ok {
			if prefix != "" && (ip == prefix || strings.HasPrefix(ip, prefix+"/")) {
				return nil, fmt.Errorf("module %s imports %s, which is in no module of go.work", self.Path, ip)
			}
			continue
		}
		if m != self.Path {
			seen[m] = true
		}
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	slices.Sort(out)
	return out, nil
}

// commonPrefix is the longest slash-separated path prefix of all paths
// ("github.com/unjuno/flm" for the FLM modules); "" when there is none or
// only one path.
func commonPrefix(paths []string) string {
	if len(paths) < 2 {
		return ""
	}
	parts := strings.Split(paths[0], "/")
	n := len(parts)
	for _, p := range paths[1:] {
		q := strings.Split(p, "/")
		i := 0
		for i < n && i < len(q) && q[i] == parts[i] {
			i++
		}
		n = i
	}
	return strings.Join(parts[:n], "/")
}
