package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// versionsFile is versions.yaml, in opentelemetry-go's scheme: named module
// sets, each released together at one version, and the modules that are
// never released.
type versionsFile struct {
	ModuleSets      map[string]moduleSet `yaml:"module-sets"`
	ExcludedModules []string             `yaml:"excluded-modules"`
}

type moduleSet struct {
	Version string   `yaml:"version"`
	Modules []string `yaml:"modules"`
}

// versions is a checked versions.yaml.
type versions struct {
	// Version maps each released module path to its version.
	Version map[string]string
	// Set maps each released module path to the name of its module set.
	Set map[string]string
	// Excluded holds the module paths that are never released.
	Excluded map[string]bool
}

// readVersions reads and checks the versions.yaml at path.
func readVersions(path string) (*versions, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	v, err := parseVersions(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// parseVersions decodes versions.yaml and checks it: every version is a
// canonical semantic version whose major version matches the module path
// (v2 and later need a /vN suffix), no module is listed twice, and a
// module is either released or excluded, never both. Unknown keys are an
// error, so a typo ("module_sets") cannot silently release nothing.
func parseVersions(data []byte) (*versions, error) {
	var f versionsFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if len(f.ModuleSets) == 0 {
		return nil, fmt.Errorf("no module-sets")
	}
	v := &versions{Version: map[string]string{}, Set: map[string]string{}, Excluded: map[string]bool{}}
	names := make([]string, 0, len(f.ModuleSets))
	for name := range f.ModuleSets {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		set := f.ModuleSets[name]
		if !semver.IsValid(set.Version) || semver.Canonical(set.Version) != set.Version || semver.Build(set.Version) != "" {
			return nil, fmt.Errorf("module set %s: version %q is not a canonical semantic version like v1.2.3", name, set.Version)
		}
		if len(set.Modules) == 0 {
			return nil, fmt.Errorf("module set %s: no modules", name)
		}
		for _, p := range set.Modules {
			if err := module.CheckPath(p); err != nil {
				return nil, fmt.Errorf("module set %s: %w", name, err)
			}
			if other, dup := v.Set[p]; dup {
				return nil, fmt.Errorf("module %s is in both module sets %s and %s", p, other, name)
			}
			if err := module.Check(p, set.Version); err != nil {
				return nil, fmt.Errorf("module set %s: %w", name, err)
			}
			v.Version[p] = set.Version
			v.Set[p] = name
		}
	}
	for _, p := range f.ExcludedModules {
		if _, rel := v.Set[p]; rel {
			return nil, fmt.Errorf("module %s is both in module set %s and in excluded-modules", p, v.Set[p])
		}
		v.Excluded[p] = true
	}
	return v, nil
}

// released lists the released module paths, sorted.
func (v *versions) released() []string {
	out := make([]string, 0, len(v.Version))
	for p := range v.Version {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// tagFor is the git tag of module m (directory dir relative to the repo
// root) at version vers: "core/v1.0.0", "tools/enginefake/v0.1.0", or
// "v1.0.0" for a module at the repo root (Go's convention for modules in
// subdirectories of a repository).
func tagFor(dir, vers string) string {
	if dir == "." || dir == "" {
		return vers
	}
	return strings.TrimSuffix(dir, "/") + "/" + vers
}
