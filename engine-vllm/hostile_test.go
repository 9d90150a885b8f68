package vllm

import (
	"testing"

	"github.com/unjuno/flm/core/engine/enginehttp"
	"github.com/unjuno/flm/core/engine/enginetest"
)

func TestHostileServers(t *testing.T) {
	enginetest.RunHostile(t, New(enginehttp.New(nil)))
}
