package enginetest

import (
	"testing"

	"github.com/unjuno/flm/core/engine"
)

func TestMemStores(t *testing.T) {
	RunEndpointStore(t, func(*testing.T) engine.EndpointStore { return &MemEndpoints{} })
	RunStateCache(t, func(*testing.T) engine.StateCache { return &MemCache{} })
}
