package llamacpp

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
// shared/fixtures/engines/llamacpp (tools/enginefake checks that they still
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
	return engine.Endpoint{ID: "llamacpp", Kind: engine.LlamaCPP, BaseURL: url}
}

// TestProbeFingerprint: /health {"status":"ok"} and /props with build_info
// make a ready llama-server, in single-model, --alias/--embeddings and
// router mode; its 503 "Loading model" makes it busy.
func TestProbeFingerprint(t *testing.T) {
	for name, routes := range map[string]map[string]string{
		"probe_ok":              {"GET /health": "health.http", "GET /props": "props.http"},
		"probe_embeddings_mode": {"GET /health": "health.http", "GET /props": "embeddings_mode/props_alias.http"},
		"probe_router":          {"GET /health": "router_mode/health.http", "GET /props": "router_mode/props_no_model.http"},
	} {
		t.Run(name, func(t *testing.T) {
			o := newDriver().Probe(ctx(t), endpoint(replay(t, routes)))
			if o.Outcome != engine.OutcomeOK || o.Version != "b10470-34af94cd9" || !o.Capabilities.Chat {
				t.Errorf("probe = %+v, want ok, version b10470-34af94cd9, chat", o)
			}
			golden(t, name, enginetest.ProbeResultOf(o))
		})
	}
	t.Run("probe_loading", func(t *testing.T) {
		o := newDriver().Probe(ctx(t), endpoint(replay(t, map[string]string{"GET /health": "loading_health.http"})))
		if o.Outcome != engine.OutcomeBusy {
			t.Errorf("probe = %+v, want busy", o)
		}
		golden(t, "probe_loading", enginetest.ProbeResultOf(o))
	})
}

// TestModelsList: without --alias the model is named after its file (the
// path is kept as the upstream name); an alias is kept as it is; router
// mode lists every model, with a context length once loaded.
func TestModelsList(t *testing.T) {
	for name, file := range map[string]string{
		"models":                "v1_models.http",
		"models_alias":          "embeddings_mode/v1_models_alias.http",
		"models_router_initial": "router_mode/v1_models_initial.http",
		"models_router_loaded":  "router_mode/v1_models_after_load.http",
	} {
		t.Run(name, func(t *testing.T) {
			models, err := newDriver().Models(ctx(t), endpoint(replay(t, map[string]string{"GET /v1/models": file})))
			if err != nil {
				t.Fatal(err)
			}
			if len(models) == 0 || models[0].Name != "tiny-chat" || models[0].ID != "flm://llamacpp/tiny-chat" {
				t.Errorf("models = %+v, want tiny-chat first", models)
			}
			golden(t, name, models)
		})
	}
}
