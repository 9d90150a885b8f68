package settingstest

import (
	"testing"

	"github.com/unjuno/flm/core/settings"
)

func TestMemStore(t *testing.T) {
	Run(t, func(*testing.T) settings.Store { return NewMemStore() })
}
