package cli

import (
	"context"

	"github.com/unjuno/flm/core/flmerr"
)

// acmeTLS sets up https-acme (issue 10; owned by the ACME work).
func (a *App) acmeTLS(ctx context.Context, env tlsEnv) (tlsSetup, error) {
	return tlsSetup{}, flmerr.New(flmerr.ProxyInvalidConfig, "mode https-acme is not built yet")
}

// DNSProvidersCmd is `flm security dns-providers`.
type DNSProvidersCmd struct{}

// Run lists the DNS providers.
func (DNSProvidersCmd) Run(a *App) error {
	return flmerr.New(flmerr.Internal, "not built yet")
}
