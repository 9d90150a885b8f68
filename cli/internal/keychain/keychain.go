package keychain

import (
	"path/filepath"

	"github.com/unjuno/flm/core/secret"
)

// Service is the application name keychain items are filed under.
const Service = "flm"

// OS is a keychain of this operating system, scoped to one data dir.
type OS interface {
	secret.Store
	// Name says which keychain this is, for `flm check` ("Secret Service").
	Name() string
}

// New returns this OS's keychain for the data dir scope. getenv (nil =
// os.Getenv) supplies the environment: on Linux, the D-Bus session bus
// address.
func New(scope string, getenv func(string) string) OS {
	if abs, err := filepath.Abs(scope); err == nil {
		scope = abs
	}
	return newDefault(scope, getenv)
}

// label is the item's human-readable name in keychain GUIs.
func label(scope, name string) string {
	return "FLM " + name + " (" + scope + ")"
}
