package vllm

import (
	"context"
	"flag"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/engine/enginehttp"
	"github.com/unjuno/flm/core/engine/enginetest"
)

// The captures under testdata/captures are verbatim copies of
// shared/fixtures/engines/vllm (tools/enginefake checks that they still
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
	return engine.Endpoint{ID: "vllm", Kind: engine.VLLM, BaseURL: url}
}

// TestProbeFingerprint: /version, models owned_by "vllm" and /health 200
// make a ready vLLM; a 503 /health (engine process dead) keeps it vLLM but
// busy; a 401 on /v1/models names the missing key.
func TestProbeFingerprint(t *testing.T) {
	ok := map[string]string{"GET /version": "version.http", "GET /v1/models": "v1_models.http", "GET /health": "health_ok.http"}
	url := replay(t, ok)
	o := newDriver().Probe(ctx(t), endpoint(url))
	if o.Outcome != engine.OutcomeOK || o.Version != "0.32.0" || !o.Capabilities.Chat {
		t.Errorf("probe = %+v, want ok, version 0.32.0, chat", o)
	}
	golden(t, "probe_ok", enginetest.ProbeResultOf(o))

	url = replay(t, map[string]string{"GET /version": "version.http", "GET /v1/models": "v1_models.http", "GET /health": "health_engine_dead.http"})
	o = newDriver().Probe(ctx(t), endpoint(url))
	if o.Outcome != engine.OutcomeBusy || o.Version != "0.32.0" {
		t.Errorf("engine dead: probe = %+v, want busy with the version", o)
	}
	golden(t, "probe_engine_dead", enginetest.ProbeResultOf(o))

	url = replay(t, map[string]string{"GET /version": "version.http", "GET /v1/models": "error_unauthorized.http"})
	o = newDriver().Probe(ctx(t), endpoint(url))
	if o.Outcome != engine.OutcomeBroken || !strings.Contains(o.Reason, "--api-key-env") {
		t.Errorf("unauthorized: probe = %+v, want broken naming --api-key-env", o)
	}
	golden(t, "probe_unauthorized", enginetest.ProbeResultOf(o))
}

// TestModelsList: served names with max_model_len as the context length; a
// LoRA adapter (max_model_len null) is listed without one.
func TestModelsList(t *testing.T) {
	url := replay(t, map[string]string{"GET /v1/models": "v1_models.http"})
	models, err := newDriver().Models(ctx(t), endpoint(url))
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != 1 || models[0].ID != "flm://vllm/Qwen/Qwen2.5-1.5B-Instruct" ||
		models[0].ContextLength == nil || *models[0].ContextLength != 32768 {
		t.Errorf("models = %+v", models)
	}
	golden(t, "models", models)

	url = replay(t, map[string]string{"GET /v1/models": "v1_models_served_name_and_lora.http"})
	models, err = newDriver().Models(ctx(t), endpoint(url))
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != 2 || models[0].Name != "qwen-small" || models[1].Name != "sql-lora" || models[1].ContextLength != nil {
		t.Errorf("models = %+v", models)
	}
	golden(t, "models_served_name_and_lora", models)
}
