package cli

import (
	"debug/buildinfo"
	"encoding/json"
	"maps"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/unjuno/flm/core"
)

func TestVersionFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		want versionInfo
	}{{
		name: "installed at tags",
		bi: &debug.BuildInfo{
			GoVersion: "go1.99.1",
			Main:      debug.Module{Path: "github.com/unjuno/flm/cli", Version: "v0.3.0"},
			Deps: []*debug.Module{
				{Path: "github.com/alecthomas/kong", Version: "v1.17.0"},
				{Path: "github.com/unjuno/flm/core", Version: "v0.2.1"},
				{Path: "github.com/unjuno/flm/proxy", Version: "v0.3.0"},
				{Path: "github.com/unjuno/flm/engine-ollama", Version: "v0.1.4"},
				// A replace to a local checkout is what was built.
				{Path: "github.com/unjuno/flm/engine-vllm", Version: "v0.1.0", Replace: &debug.Module{Path: "../engine-vllm"}},
				{Path: "github.com/unjuno/flm/engine-lmstudio", Version: "v0.1.0", Replace: &debug.Module{Path: "github.com/fork/lmstudio", Version: "v0.1.1"}},
				{Path: "github.com/unjuno/flm/tools", Version: "(devel)"},
			},
			Settings: []debug.BuildSetting{
				{Key: "-buildmode", Value: "exe"},
				{Key: "vcs", Value: "git"},
				{Key: "vcs.revision", Value: "0123abcd"},
				{Key: "vcs.time", Value: "2026-11-27T10:00:00Z"},
				{Key: "vcs.modified", Value: "true"},
			},
		},
		want: versionInfo{
			FLM: "v0.3.0", CoreAPI: core.APIVersion, Go: "go1.99.1", OS: runtime.GOOS, Arch: runtime.GOARCH,
			Modules: map[string]string{
				"cli": "v0.3.0", "core": "v0.2.1", "proxy": "v0.3.0", "engine-ollama": "v0.1.4",
				"engine-vllm": "(devel)", "engine-lmstudio": "v0.1.1",
			},
			VCS: &vcsInfo{System: "git", Revision: "0123abcd", Time: "2026-11-27T10:00:00Z", Modified: true},
		},
	}, {
		name: "workspace build without VCS stamp",
		bi: &debug.BuildInfo{
			GoVersion: "go1.99.1",
			Main:      debug.Module{Path: "github.com/unjuno/flm/cli", Version: "(devel)"},
			Deps:      []*debug.Module{{Path: "github.com/unjuno/flm/core", Version: "(devel)"}},
			Settings:  []debug.BuildSetting{{Key: "-buildvcs", Value: "false"}},
		},
		want: versionInfo{
			FLM: "(devel)", CoreAPI: core.APIVersion, Go: "go1.99.1", OS: runtime.GOOS, Arch: runtime.GOARCH,
			Modules: map[string]string{"cli": "(devel)", "core": "(devel)"},
		},
	}, {
		name: "no build information",
		want: versionInfo{
			FLM: "unknown", CoreAPI: core.APIVersion, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
			Modules: map[string]string{},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := buildVersions(tc.bi); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v (vcs %+v)\nwant %+v (vcs %+v)", got, got.VCS, tc.want, tc.want.VCS)
			}
		})
	}
}

// versionOf runs `flm version` in a real binary.
func versionOf(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, append(args, "version")...).Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	return string(out)
}

// TestVersionOfRealBinary compares what the flm binary says about itself
// with what the Go toolchain reads from the same file: every FLM module it
// links, at the version Go recorded, and the VCS stamp exactly when the
// build has one.
func TestVersionOfRealBinary(t *testing.T) {
	bins := []string{flmBin}
	// A build stamped with its git revision, where the checkout allows it.
	stamped := filepath.Join(t.TempDir(), "flm-vcs")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", stamped, "github.com/unjuno/flm/cli/cmd/flm").CombinedOutput(); err == nil {
		bins = append(bins, stamped)
	} else {
		t.Logf("no VCS-stamped build here (%v): %s", err, out)
	}
	for _, bin := range bins {
		bi, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for _, m := range append([]*debug.Module{&bi.Main}, bi.Deps...) {
			name, ok := strings.CutPrefix(m.Path, "github.com/unjuno/flm/")
			if !ok {
				continue
			}
			if m.Replace != nil {
				m = m.Replace
			}
			want[name] = m.Version
		}
		var env struct {
			Data versionInfo `json:"data"`
		}
		if err := json.Unmarshal([]byte(versionOf(t, bin)), &env); err != nil {
			t.Fatal(err)
		}
		v := env.Data
		if !maps.Equal(v.Modules, want) {
			t.Errorf("%s: modules %v, want %v (go version -m)", bin, v.Modules, want)
		}
		for _, m := range shippedModules {
			if v.Modules[m] == "" {
				t.Errorf("%s: module %s missing from %v", bin, m, v.Modules)
			}
		}
		if v.FLM != bi.Main.Version || v.CoreAPI != core.APIVersion || v.Go != bi.GoVersion {
			t.Errorf("%s: flm %q core_api %q go %q; build info says %q, %q", bin, v.FLM, v.CoreAPI, v.Go, bi.Main.Version, bi.GoVersion)
		}
		rev := ""
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
		switch {
		case rev == "" && v.VCS != nil:
			t.Errorf("%s: vcs %+v, but the build has no VCS stamp", bin, v.VCS)
		case rev != "" && (v.VCS == nil || v.VCS.Revision != rev):
			t.Errorf("%s: vcs %+v, want revision %s", bin, v.VCS, rev)
		}

		text := versionOf(t, bin, "--format", "text")
		mustContain(t, text, "flm "+bi.Main.Version+" (core API "+core.APIVersion)
		for _, m := range shippedModules {
			mustContain(t, text, "\n"+m+" ")
		}
		if rev != "" {
			mustContain(t, text, "built from git revision "+rev)
		} else if bi.Main.Version == "(devel)" {
			mustContain(t, text, "without version control information")
		}
	}
}
