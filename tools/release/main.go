// Command release versions and tags FLM's Go modules from versions.yaml
// (docs/RELEASING.md, docs/adr/0004-module-boundary.md).
//
//	go run ./tools/release [-root DIR] sync
//	    set each go.mod's requires of sibling modules (from its imports,
//	    tests included) to their versions.yaml versions, and rewrite
//	    go.work's pinned replaces (one per released module)
//	go run ./tools/release [-root DIR] list
//	    print "<dir> <module path> <version> <tag>" for every released module
//	go run ./tools/release [-root DIR] tiers
//	    print the module directories in dependency order, one tier a line
//	    (the order go.sum lines must be written in; fails on a cycle)
//	go run ./tools/release [-root DIR] tag
//	    annotated tags core/v1.0.0 … on HEAD for every released module
//	go run ./tools/release [-root DIR] modproxy -out DIR [-tree]
//	    write a GOPROXY file tree of the released modules, zipped from
//	    the tags (or, with -tree, from the directories as they are), and
//	    print the go.sum lines of each module version
//
// DIR defaults to the nearest directory above the current one that holds
// go.work. Run it from the workspace (go run ./tools/release from the
// repo root): the go.work replaces resolve the sibling modules it needs.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintln(os.Stderr, "release:", err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

const usage = `usage: release [-root DIR] sync | list | tiers | tag | modproxy -out DIR [-tree]`

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, usage); fs.PrintDefaults() }
	root := fs.String("root", "", "repo root holding go.work and versions.yaml (default: nearest one above the current directory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{usage}
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]

	var outDir string
	var tree bool
	switch cmd {
	case "sync", "list", "tiers", "tag":
		if len(rest) > 0 {
			return usageError{fmt.Sprintf("%s takes no arguments\n%s", cmd, usage)}
		}
	case "modproxy":
		mf := flag.NewFlagSet("modproxy", flag.ContinueOnError)
		mf.SetOutput(stderr)
		mf.StringVar(&outDir, "out", "", "directory to write the module proxy to (created if missing)")
		mf.BoolVar(&tree, "tree", false, "zip the module directories as they are instead of the git tags")
		if err := mf.Parse(rest); err != nil {
			return err
		}
		if outDir == "" || mf.NArg() > 0 {
			return usageError{usage}
		}
	default:
		return usageError{fmt.Sprintf("unknown command %q\n%s", cmd, usage)}
	}

	if *root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		r, err := findRoot(wd)
		if err != nil {
			return err
		}
		*root = r
	}
	ws, err := loadWorkspace(*root)
	if err != nil {
		return err
	}
	v, err := readVersions(filepath.Join(ws.Root, "versions.yaml"))
	if err != nil {
		return err
	}
	if err := checkLayout(ws, v); err != nil {
		return err
	}

	switch cmd {
	case "sync":
		return syncRepo(ws, v, stdout)
	case "list":
		for _, r := range releases(ws, v) {
			fmt.Fprintf(stdout, "%s %s %s %s\n", r.Dir, r.Path, r.Version, r.Tag())
		}
		return nil
	case "tiers":
		tiers, err := moduleTiers(ws)
		if err != nil {
			return err
		}
		for _, t := range tiers {
			fmt.Fprintln(stdout, strings.Join(t, " "))
		}
		return nil
	case "tag":
		return tagRepo(ws.Root, releases(ws, v), stdout)
	default: // modproxy
		out, err := filepath.Abs(outDir)
		if err != nil {
			return err
		}
		entries, err := writeProxy(out, ws.Root, releases(ws, v), tree)
		if err != nil {
			return err
		}
		for _, e := range entries {
			fmt.Fprintf(stdout, "%s %s %s\n%s %s/go.mod %s\n", e.Path, e.Version, e.Sum, e.Path, e.Version, e.GoModSum)
		}
		return nil
	}
}

// findRoot returns the nearest directory at or above dir holding go.work.
func findRoot(dir string) (string, error) {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.work in %s or above it; pass -root", dir)
		}
		d = parent
	}
}
