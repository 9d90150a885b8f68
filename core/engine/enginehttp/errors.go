package enginehttp

import (
	"context"
	"errors"
	"net"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
)

// ModelsError turns a failed model listing into the ENGINE_* error a user
// sees: r is what arrived (zero when nothing did), err the failure, if any.
func ModelsError(ep engine.Endpoint, r Response, err error) error {
	name := engine.DisplayName(ep.Kind) + " at " + ep.BaseURL
	var ne net.Error
	switch {
	case err == nil:
		return flmerr.New(flmerr.EngineAPIError, "%s: listing models answered HTTP %d", name, r.Status)
	case errors.Is(err, ErrTooLarge):
		return flmerr.Wrap(err, flmerr.EngineAPIError, "%s: listing models", name)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return flmerr.New(flmerr.EngineTimeout, "%s: listing models timed out", name)
	case r.Status != 0:
		return flmerr.Wrap(err, flmerr.EngineAPIError, "%s: listing models", name)
	}
	return flmerr.Wrap(NetworkObservation(err).AsError(), flmerr.EngineNetworkError, "%s: listing models", name)
}
