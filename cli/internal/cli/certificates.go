package cli

import (
	"github.com/unjuno/flm/core/flmerr"
)

// CertificatesCmd is `flm security certificates`.
type CertificatesCmd struct{}

// Run lists certificates.
func (CertificatesCmd) Run(a *App) error { return flmerr.New(flmerr.Internal, "not built yet") }
