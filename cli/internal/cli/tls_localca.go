package cli

import (
	"context"

	"github.com/unjuno/flm/core/flmerr"
)

// localCATLS sets up packaged-ca (issue 10; owned by the local CA work).
func (a *App) localCATLS(ctx context.Context, env tlsEnv) (tlsSetup, error) {
	return tlsSetup{}, flmerr.New(flmerr.ProxyInvalidConfig, "mode packaged-ca is not built yet")
}
