package cli

import (
	"context"

	"github.com/unjuno/flm/core/flmerr"
)

// localCATLS sets up packaged-ca (issue 10; owned by the local CA work).
func (a *App) localCATLS(ctx context.Context, env tlsEnv) (tlsSetup, error) {
	return tlsSetup{}, flmerr.New(flmerr.ProxyInvalidConfig, "mode packaged-ca is not built yet")
}

// InstallCACmd is `flm security install-ca`.
type InstallCACmd struct{}

// Run installs the local CA.
func (InstallCACmd) Run(a *App) error { return flmerr.New(flmerr.Internal, "not built yet") }

// UninstallCACmd is `flm security uninstall-ca`.
type UninstallCACmd struct{}

// Run removes the local CA.
func (UninstallCACmd) Run(a *App) error { return flmerr.New(flmerr.Internal, "not built yet") }
