package ollama

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
// shared/fixtures/engines/ollama (tools/enginefake checks that they still
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

// TestProbeFingerprint: the captured Ollama is recognised, with its version.
func TestProbeFingerprint(t *testing.T) {
	for name, routes := range map[string]map[string]string{
		"probe_ok": {"GET /api/version": "api_version.http", "GET /api/tags": "api_tags.http"},
		// Freshly installed, no model yet: still Ollama, and up.
		"probe_no_models": {"GET /api/version": "api_version.http", "GET /api/tags": "no_models/api_tags_empty.http"},
	} {
		t.Run(name, func(t *testing.T) {
			url := replay(t, routes)
			o := newDriver().Probe(ctx(t), engine.Endpoint{ID: "ollama", Kind: engine.Ollama, BaseURL: url})
			if o.Outcome != engine.OutcomeOK || o.Version != "0.33.0-rc2" || !o.Capabilities.Chat {
				t.Errorf("probe = %+v, want ok, version 0.33.0-rc2, chat", o)
			}
			golden(t, name, enginetest.ProbeResultOf(o))
		})
	}
}

// TestModelsList: /api/tags lists the models, /api/show corrects their
// capabilities (tags calls the embedding model a completion model) and
// gives the context length.
func TestModelsList(t *testing.T) {
	url := replay(t, map[string]string{
		"GET /api/tags":                    "api_tags.http",
		"POST /api/show tiny:latest":       "api_show.http",
		"POST /api/show tiny-embed:latest": "api_show_embed_model.http",
	})
	models, err := newDriver().Models(ctx(t), engine.Endpoint{ID: "ollama", Kind: engine.Ollama, BaseURL: url})
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != 2 || models[0].ID != "flm://ollama/tiny:latest" || !models[0].Capabilities.Chat ||
		models[1].Capabilities.Chat || !models[1].Capabilities.Embeddings ||
		models[0].ContextLength == nil || *models[0].ContextLength != 2048 {
		t.Errorf("models = %+v", models)
	}
	golden(t, "models", models)
}

func TestModelsListEmpty(t *testing.T) {
	url := replay(t, map[string]string{"GET /api/tags": "no_models/api_tags_empty.http"})
	models, err := newDriver().Models(ctx(t), engine.Endpoint{ID: "ollama", Kind: engine.Ollama, BaseURL: url})
	if err != nil || len(models) != 0 {
		t.Fatalf("models = %+v, %v", models, err)
	}
	golden(t, "models_empty", models)
}
