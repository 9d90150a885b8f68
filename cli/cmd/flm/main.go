// Command flm is FLM's command-line interface: a personal gateway for local
// LLM engines. See the README and docs/specs/CLI_SPEC.md.
package main

import (
	"os"

	"github.com/unjuno/flm/cli/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.OSEnv()))
}
