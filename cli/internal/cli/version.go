package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/unjuno/flm/core"
)

// modulePrefix is the path every FLM module starts with.
const modulePrefix = "github.com/unjuno/flm/"

// devel is what Go records as the version of a module built from a source
// tree (a go.work workspace, a local replace, `go build` in a checkout)
// rather than fetched at a tagged version.
const devel = "(devel)"

// shippedModules are the FLM modules linked into the flm binary, in the
// order the text output lists them.
var shippedModules = []string{"core", "proxy", "cli", "engine-ollama", "engine-vllm", "engine-lmstudio", "engine-llamacpp"}

// VersionCmd is `flm version`.
type VersionCmd struct{}

// versionInfo is the data of `flm version`.
//
// FLM, Modules and VCS come from the build information Go embeds in the
// binary (runtime/debug.ReadBuildInfo), never from constants kept by hand:
// a module fetched at a tag shows that tag ("v0.2.0"), one built from a
// source tree shows "(devel)" — every module of a go.work workspace build
// does. VCS is present only when the build stamped it (`go build` inside a
// git checkout stamps it; tools/test.sh and `go test` build with
// -buildvcs=false or without stamping, so there it is absent). CoreAPI is
// core.APIVersion, the version of core's exported API, which is a contract
// rather than a build fact.
type versionInfo struct {
	// FLM is the version of the main module (cli), i.e. of the binary.
	FLM     string `json:"flm"`
	CoreAPI string `json:"core_api"`
	// Modules maps each FLM module linked into the binary ("core",
	// "proxy", "engine-ollama" …, and "cli" itself) to its version.
	Modules map[string]string `json:"modules"`
	VCS     *vcsInfo          `json:"vcs,omitempty"`
	Go      string            `json:"go"`
	OS      string            `json:"os"`
	Arch    string            `json:"arch"`
}

// vcsInfo is the source revision the binary was built from.
type vcsInfo struct {
	System   string `json:"system"`
	Revision string `json:"revision"`
	Time     string `json:"time,omitempty"`
	// Modified: the working tree had uncommitted changes.
	Modified bool `json:"modified"`
}

// Run prints the versions.
func (VersionCmd) Run(a *App) error {
	bi, _ := debug.ReadBuildInfo() // nil when !ok
	v := buildVersions(bi)
	return a.print(v, func(w io.Writer) {
		fmt.Fprintf(w, "flm %s (core API %s, %s %s/%s)\n", v.FLM, v.CoreAPI, v.Go, v.OS, v.Arch)
		if v.VCS != nil {
			mod := ""
			if v.VCS.Modified {
				mod = ", with uncommitted changes"
			}
			fmt.Fprintf(w, "built from %s revision %s%s\n", v.VCS.System, v.VCS.Revision, mod)
		}
		if v.FLM == devel && v.VCS == nil {
			fmt.Fprintln(w, "built from a source tree without version control information (e.g. -buildvcs=false)")
		}
		tw := table(w, "MODULE", "VERSION")
		for _, m := range moduleOrder(v.Modules) {
			tw.row(m, v.Modules[m])
		}
		tw.flush()
	})
}

// buildVersions reads the versions from bi; a nil bi (a binary built
// without module support) yields "unknown" and no modules.
func buildVersions(bi *debug.BuildInfo) versionInfo {
	v := versionInfo{
		FLM: "unknown", CoreAPI: core.APIVersion, Modules: map[string]string{},
		Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
	}
	if bi == nil {
		return v
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion
	}
	if name, ok := strings.CutPrefix(bi.Main.Path, modulePrefix); ok {
		v.FLM = moduleVersion(&bi.Main)
		v.Modules[name] = v.FLM
	}
	for _, d := range bi.Deps {
		name, ok := strings.CutPrefix(d.Path, modulePrefix)
		// tools holds fake engines and benchmarks: only test binaries
		// link it, and it never ships.
		if !ok || name == "tools" {
			continue
		}
		v.Modules[name] = moduleVersion(d)
	}
	var vcs vcsInfo
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs":
			vcs.System = s.Value
		case "vcs.revision":
			vcs.Revision = s.Value
		case "vcs.time":
			vcs.Time = s.Value
		case "vcs.modified":
			vcs.Modified = s.Value == "true"
		}
	}
	if vcs.Revision != "" {
		v.VCS = &vcs
	}
	return v
}

// moduleVersion is the version Go recorded for m, following a replace
// directive to the module actually built.
func moduleVersion(m *debug.Module) string {
	if m.Replace != nil {
		m = m.Replace
	}
	if m.Version == "" {
		return devel
	}
	return m.Version
}

// moduleOrder lists the shipped modules first, in their usual order, then
// any other FLM module the build linked, by name.
func moduleOrder(mods map[string]string) []string {
	var out, rest []string
	for _, m := range shippedModules {
		if _, ok := mods[m]; ok {
			out = append(out, m)
		}
	}
	for m := range mods {
		if !slices.Contains(shippedModules, m) {
			rest = append(rest, m)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}
