package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

// proxyEntry is one module version written to the proxy, with the two
// go.sum lines for it.
type proxyEntry struct {
	Path, Version string
	Sum           string // h1: hash of the module zip
	GoModSum      string // h1: hash of its go.mod
}

// writeProxy is `release modproxy`: it writes a GOPROXY file tree under
// out (https://go.dev/ref/mod#goproxy-protocol) holding every module of
// rels: <escaped path>/@v/list, <version>.info, <version>.mod and
// <version>.zip. The zips are made from the git tags (zip.CreateFromVCS,
// what proxy.golang.org serves after the tags are pushed), or, with tree,
// from the directories as they are (zip.CreateFromDir: untracked files
// are included, so use it in a clean checkout). An existing list file is
// merged, so one directory can hold several releases.
func writeProxy(out, root string, rels []release, tree bool) ([]proxyEntry, error) {
	var entries []proxyEntry
	for _, r := range rels {
		e, err := writeProxyModule(out, root, r, tree)
		if err != nil {
			return nil, fmt.Errorf("%s@%s: %w", r.Path, r.Version, err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func writeProxyModule(out, root string, r release, tree bool) (proxyEntry, error) {
	mv := module.Version{Path: r.Path, Version: r.Version}
	esc, err := module.EscapePath(r.Path)
	if err != nil {
		return proxyEntry{}, err
	}
	escVer, err := module.EscapeVersion(r.Version)
	if err != nil {
		return proxyEntry{}, err
	}
	vdir := filepath.Join(out, filepath.FromSlash(esc), "@v")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return proxyEntry{}, err
	}
	base := filepath.Join(vdir, escVer)

	// The zip, written to a temporary name first so that a failed run
	// never leaves a truncated zip the go command would trust.
	tmp, err := os.CreateTemp(vdir, escVer+".zip.*")
	if err != nil {
		return proxyEntry{}, err
	}
	defer os.Remove(tmp.Name())
	var stamp time.Time
	if tree {
		err = modzip.CreateFromDir(tmp, mv, filepath.Join(root, filepath.FromSlash(r.Dir)))
		stamp = time.Now()
	} else {
		subdir := r.Dir
		if subdir == "." {
			subdir = ""
		}
		err = modzip.CreateFromVCS(tmp, mv, root, "refs/tags/"+r.Tag(), subdir)
		if err == nil {
			stamp, err = tagTime(root, r.Tag())
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return proxyEntry{}, err
	}
	if err := os.Rename(tmp.Name(), base+".zip"); err != nil {
		return proxyEntry{}, err
	}

	// The .mod file is the go.mod inside the zip, so the two always agree.
	mod, err := goModFromZip(base+".zip", mv)
	if err != nil {
		return proxyEntry{}, err
	}
	if err := os.WriteFile(base+".mod", mod, 0o644); err != nil {
		return proxyEntry{}, err
	}
	info, err := json.Marshal(struct {
		Version string
		Time    string
	}{r.Version, stamp.UTC().Format(time.RFC3339)})
	if err != nil {
		return proxyEntry{}, err
	}
	if err := os.WriteFile(base+".info", append(info, '\n'), 0o644); err != nil {
		return proxyEntry{}, err
	}
	if err := addToList(filepath.Join(vdir, "list"), r.Version); err != nil {
		return proxyEntry{}, err
	}

	sum, err := dirhash.HashZip(base+".zip", dirhash.Hash1)
	if err != nil {
		return proxyEntry{}, err
	}
	modSum, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(mod)), nil
	})
	if err != nil {
		return proxyEntry{}, err
	}
	return proxyEntry{Path: r.Path, Version: r.Version, Sum: sum, GoModSum: modSum}, nil
}

// tagTime is the commit time of tag, the time proxy.golang.org reports.
func tagTime(root, tag string) (time.Time, error) {
	s, err := git(root, "log", "-1", "--format=%cI", "refs/tags/"+tag)
	if err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339, s)
}

// goModFromZip reads <path>@<version>/go.mod from a module zip.
func goModFromZip(zipFile string, mv module.Version) ([]byte, error) {
	zr, err := zip.OpenReader(zipFile)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	name := mv.Path + "@" + mv.Version + "/go.mod"
	for _, f := range zr.File {
		if f.Name != name {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	return nil, fmt.Errorf("%s has no %s", zipFile, name)
}

// addToList adds version to the @v/list file, one version a line, in
// semver order.
func addToList(file, version string) error {
	var vs []string
	data, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, l := range strings.Fields(string(data)) {
		if l != version {
			vs = append(vs, l)
		}
	}
	vs = append(vs, version)
	slices.SortFunc(vs, semver.Compare)
	return os.WriteFile(file, []byte(strings.Join(vs, "\n")+"\n"), 0o644)
}
