package cli

import "github.com/unjuno/flm/core/flmerr"

// UICmd is `flm ui` (issue 12; owned by the UI work).
type UICmd struct{}

// Run serves the UI.
func (UICmd) Run(a *App) error { return flmerr.New(flmerr.Internal, "flm ui is not built yet") }
