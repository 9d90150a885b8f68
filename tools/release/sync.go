package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
)

// syncGoMod returns the go.mod text data (read from file) with a require
// of each module in need at its version (need maps module path to
// version), marked direct. Other requires of siblings (isSibling) are kept
// but moved to their version in all, the versions of every released
// module: `go mod tidy` may list a sibling that is only imported
// indirectly, and it drops those that are no longer needed. A replace of
// a sibling is an error: it would break `go install …@version` for users,
// and go.work resolves siblings during development.
func syncGoMod(file string, data []byte, need, all map[string]string, isSibling func(string) bool) ([]byte, error) {
	f, err := modfile.Parse(file, data, nil)
	if err != nil {
		return nil, err
	}
	for _, r := range f.Replace {
		if isSibling(r.Old.Path) {
			return nil, fmt.Errorf("%s: replaces %s: remove it (go.work resolves sibling modules; a replace breaks go install …@version)", file, r.Old.Path)
		}
	}
	var reqs []*modfile.Require
	for _, r := range f.Require {
		p := r.Mod.Path
		switch {
		case need[p] != "":
			// added below, direct, at its release version
		case isSibling(p):
			v, ok := all[p]
			if !ok {
				return nil, fmt.Errorf("%s: requires %s, which is never released (excluded-modules)", file, p)
			}
			reqs = append(reqs, &modfile.Require{Mod: module.Version{Path: p, Version: v}, Indirect: r.Indirect})
		default:
			reqs = append(reqs, &modfile.Require{Mod: r.Mod, Indirect: r.Indirect})
		}
	}
	paths := make([]string, 0, len(need))
	for p := range need {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		reqs = append(reqs, &modfile.Require{Mod: module.Version{Path: p, Version: need[p]}})
	}
	f.SetRequireSeparateIndirect(reqs)
	f.Cleanup()
	return modfile.Format(f.Syntax), nil
}

// syncGoWork returns the go.work text data (read from file) with every
// replace of a sibling module (isSibling) removed and one replace block
// added, sorted by module path: `replace <path> <version> => ./<dir>`
// for each released module. Pinning the version keeps go.work valid
// (a workspace module may not be replaced at all versions) and lets the
// go command resolve `require <sibling> <version>` from the directory
// without downloading it. Other directives are kept.
func syncGoWork(file string, data []byte, lines []release, isSibling func(string) bool) ([]byte, error) {
	wf, err := modfile.ParseWork(file, data, nil)
	if err != nil {
		return nil, err
	}
	for _, r := range slices.Clone(wf.Replace) {
		if isSibling(r.Old.Path) {
			if err := wf.DropReplace(r.Old.Path, r.Old.Version); err != nil {
				return nil, err
			}
		}
	}
	wf.Cleanup()
	var b bytes.Buffer
	b.Write(bytes.TrimRight(modfile.Format(wf.Syntax), "\n"))
	if len(lines) > 0 {
		lines = slices.Clone(lines)
		slices.SortFunc(lines, func(a, b release) int { return strings.Compare(a.Path, b.Path) })
		b.WriteString("\n\n// Sibling modules at their versions.yaml versions, resolved from this\n")
		b.WriteString("// checkout (tools/release sync writes this block; docs/adr/0004-module-boundary.md).\n")
		b.WriteString("replace (\n")
		for _, l := range lines {
			fmt.Fprintf(&b, "\t%s %s => ./%s\n", l.Path, l.Version, l.Dir)
		}
		b.WriteString(")")
	}
	b.WriteString("\n")
	// Parse the result again: it must be a valid go.work with exactly
	// the replaces just written.
	check, err := modfile.ParseWork(file, b.Bytes(), nil)
	if err != nil {
		return nil, fmt.Errorf("rewritten go.work does not parse: %w", err)
	}
	if n := len(check.Replace) - (len(wf.Replace)); n != len(lines) {
		return nil, fmt.Errorf("rewritten go.work has %d sibling replaces, want %d", n, len(lines))
	}
	return b.Bytes(), nil
}

// syncRepo is `release sync`: it sets the sibling requires of every
// workspace module's go.mod from its imports and versions.yaml, and
// rewrites go.work's replaces. It reports each file it changed on out.
func syncRepo(ws *workspace, v *versions, out io.Writer) error {
	isSibling := func(p string) bool { _, ok := ws.module(p); return ok }
	deps, err := siblingDeps(ws)
	if err != nil {
		return err
	}
	for _, m := range ws.Modules {
		dir := filepath.Join(ws.Root, filepath.FromSlash(m.Dir))
		need := map[string]string{}
		for _, s := range deps[m.Path] {
			ver, ok := v.Version[s]
			if !ok {
				return fmt.Errorf("module %s imports %s, which is never released (excluded-modules): a released or tested module cannot depend on it", m.Path, s)
			}
			need[s] = ver
		}
		if err := rewrite(filepath.Join(dir, "go.mod"), out, func(file string, data []byte) ([]byte, error) {
			return syncGoMod(file, data, need, v.Version, isSibling)
		}); err != nil {
			return err
		}
	}
	return rewrite(filepath.Join(ws.Root, "go.work"), out, func(file string, data []byte) ([]byte, error) {
		return syncGoWork(file, data, releases(ws, v), isSibling)
	})
}

// rewrite applies edit to file and writes the result if it differs,
// reporting "updated <file>" on out.
func rewrite(file string, out io.Writer, edit func(string, []byte) ([]byte, error)) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	next, err := edit(file, data)
	if err != nil {
		return err
	}
	if bytes.Equal(next, data) {
		return nil
	}
	if err := os.WriteFile(file, next, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "updated %s\n", file)
	return nil
}
