package cli

import (
	"fmt"
	"io"
	"runtime"

	"github.com/unjuno/flm/core"
	llamacpp "github.com/unjuno/flm/engine-llamacpp"
	lmstudio "github.com/unjuno/flm/engine-lmstudio"
	ollama "github.com/unjuno/flm/engine-ollama"
	vllm "github.com/unjuno/flm/engine-vllm"
	"github.com/unjuno/flm/proxy"
)

// Version is the version of the cli module and the flm binary.
const Version = "0.1.0"

// VersionCmd is `flm version`.
type VersionCmd struct{}

// Run prints the versions.
func (VersionCmd) Run(a *App) error {
	mods := map[string]string{
		"cli": Version, "core": core.Version, "proxy": proxy.Version,
		"engine-ollama": ollama.Version, "engine-vllm": vllm.Version,
		"engine-lmstudio": lmstudio.Version, "engine-llamacpp": llamacpp.Version,
	}
	data := map[string]any{
		"flm": Version, "core_api": core.APIVersion, "modules": mods,
		"go": runtime.Version(), "os": runtime.GOOS, "arch": runtime.GOARCH,
	}
	return a.print(data, func(w io.Writer) {
		fmt.Fprintf(w, "flm %s (core API %s, %s %s/%s)\n", Version, core.APIVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		tw := table(w, "MODULE", "VERSION")
		for _, m := range []string{"core", "proxy", "cli", "engine-ollama", "engine-vllm", "engine-lmstudio", "engine-llamacpp"} {
			tw.row(m, mods[m])
		}
		tw.flush()
	})
}
