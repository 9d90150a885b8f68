package main

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// git runs git in dir and returns its trimmed standard output.
func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// release is one module to release.
type release struct {
	Path, Dir, Version string
}

// Tag is the module's git tag.
func (r release) Tag() string { return tagFor(r.Dir, r.Version) }

// releases lists the released modules of ws, sorted by module path.
func releases(ws *workspace, v *versions) []release {
	var out []release
	for _, p := range v.released() {
		m, _ := ws.module(p)
		out = append(out, release{Path: p, Dir: m.Dir, Version: v.Version[p]})
	}
	return out
}

// tagRepo is `release tag`: an annotated tag "<dir>/<version>" on HEAD for
// every released module. It refuses a working tree with uncommitted
// changes to tracked files (the tags would not hold them). A tag that
// already exists on HEAD is kept; one on another commit is an error, since
// a published version must never move.
func tagRepo(root string, rels []release, out io.Writer) error {
	st, err := git(root, "status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return err
	}
	if st != "" {
		return fmt.Errorf("the working tree has uncommitted changes; commit them first (git status):\n%s", st)
	}
	head, err := git(root, "rev-parse", "HEAD")
	if err != nil {
		return err
	}
	for _, r := range rels {
		tag := r.Tag()
		if at, err := git(root, "rev-parse", "-q", "--verify", "refs/tags/"+tag+"^{commit}"); err == nil {
			if at != head {
				return fmt.Errorf("tag %s already exists on commit %s, not on HEAD %s: a released version never moves; raise the version in versions.yaml", tag, at, head)
			}
			fmt.Fprintf(out, "exists  %s\n", tag)
			continue
		}
		if _, err := git(root, "tag", "-a", tag, "-m", r.Path+" "+r.Version); err != nil {
			return err
		}
		fmt.Fprintf(out, "tagged  %s\n", tag)
	}
	return nil
}
