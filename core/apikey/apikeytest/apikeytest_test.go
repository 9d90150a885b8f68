package apikeytest

import (
	"testing"

	"github.com/unjuno/flm/core/apikey"
)

func TestMemStore(t *testing.T) {
	Run(t, func(*testing.T) apikey.Store { return NewMemStore() })
}
