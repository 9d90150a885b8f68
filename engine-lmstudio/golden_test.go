package lmstudio

import (
	"context"
	"flag"
	"path/filepath"
	"testing"
	"time"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/engine/enginehttp"
	"github.com/unjuno/flm/core/engine/enginetest"
)

// The captures under testdata/captures are verbatim copies of
// shared/fixtures/engines/lmstudio (tools/enginefake checks that they still
// match). A test serves them from a loopback httptest server and compares
// what the driver makes of them with testdata/golden/*.json; -update
// rewrites the golden files from the driver's output (review the diff).

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the driver's output")

func replay(t *testing.T, routes map[string]string) string {
	return enginetest.Replay(t, filepath.Join("testdata", "captures"), routes)
}

func golden(t *testing.T, name string, got any) {
	enginetest.Golden(t, filepath.Join("testdata", "golden"), name, got, *update)
}

func ctx(t *testing.T) context.Context { return enginetest.Context(t, 5*time.Second) }

func newDriver() *Driver { return New(enginehttp.New(func(string) string { return "" })) }

func endpoint(url string) engine.Endpoint {
	return engine.Endpoint{ID: "lmstudio", Kind: engine.LMStudio, BaseURL: url}
}

// TestProbeFingerprint: /api/v0/models with type and state on every model,
// and the OpenAI /v1/models, make LM Studio (it reports no version); tools
// and vision come from its models.
func TestProbeFingerprint(t *testing.T) {
	url := replay(t, map[string]string{"GET /api/v0/models": "api_v0_models.http", "GET /v1/models": "v1_models.http"})
	o := newDriver().Probe(ctx(t), endpoint(url))
	if o.Outcome != engine.OutcomeOK || !o.Capabilities.Chat || !o.Capabilities.Tools || !o.Capabilities.Vision {
		t.Errorf("probe = %+v, want ok with chat, tools and vision", o)
	}
	golden(t, "probe_ok", enginetest.ProbeResultOf(o))
}

// TestModelsList: every downloaded model, loaded or not, with its type
// (llm, vlm, embeddings), tool use and maximum context length.
func TestModelsList(t *testing.T) {
	url := replay(t, map[string]string{"GET /api/v0/models": "api_v0_models.http"})
	models, err := newDriver().Models(ctx(t), endpoint(url))
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != 3 || models[0].Name != "qwen2.5-7b-instruct" || !models[0].Capabilities.Tools ||
		!models[1].Capabilities.Vision || !models[2].Capabilities.Embeddings || models[2].Capabilities.Chat ||
		models[0].ContextLength == nil || *models[0].ContextLength != 32768 {
		t.Errorf("models = %+v", models)
	}
	golden(t, "models", models)
}
