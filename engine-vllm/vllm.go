package vllm

import (
	"context"
	"net/http"
	"path/filepath"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/engine/enginehttp"
)

// Driver is the vLLM engine driver.
type Driver struct{ C *enginehttp.Client }

var (
	_ engine.Driver    = (*Driver)(nil)
	_ engine.Installer = (*Driver)(nil)
)

// New returns a Driver using c.
func New(c *enginehttp.Client) *Driver { return &Driver{C: c} }

// Kind implements engine.Driver.
func (*Driver) Kind() engine.Kind { return engine.VLLM }

// Habits implements engine.Driver. vLLM is the one engine that returns n
// choices for "n" > 1 (SamplingParams.n), and ends a stream with a usage
// chunk when asked (v1_chat_completions_stream.http). `vllm serve` answers
// /v1/responses (vllm-project/vllm#20504, v0.10) and /v1/messages (in the
// OpenAI server since vllm-project/vllm#27882, late 2025), but neither is
// declared: no capture shows the official SDKs accept those answers, and
// older releases, still common, lack the routes; FLM translates both to
// Chat Completions, which every release serves.
func (*Driver) Habits() engine.Habits {
	return engine.Habits{MultipleChoices: true, HonoursIncludeUsage: true}
}

type modelsBody struct {
	Data *[]struct {
		ID          string `json:"id"`
		OwnedBy     string `json:"owned_by"`
		MaxModelLen int    `json:"max_model_len"`
	} `json:"data"`
}

// Probe fingerprints vLLM: GET /version is {"version": "…"} and GET
// /v1/models lists models owned_by "vllm" (SGLang shares the shape but says
// "sglang"). /v1 routes need the engine's key when it runs with --api-key;
// /version does not, so a missing or wrong key is reported as such.
// GET /health answers 503 when vLLM's engine process died.
func (d *Driver) Probe(ctx context.Context, ep engine.Endpoint) engine.Observation {
	r, err := d.C.Get(ctx, ep, "/version")
	if err != nil {
		return enginehttp.NetworkObservation(err)
	}
	var v struct {
		Version *string `json:"version"`
	}
	if err := r.JSON(&v); err != nil || v.Version == nil || *v.Version == "" {
		return enginehttp.Foreign(engine.VLLM, "GET /version: "+enginehttp.Describe(err, "no version"))
	}
	m, err := d.C.Get(ctx, ep, "/v1/models")
	if err != nil {
		return enginehttp.NetworkObservation(err)
	}
	if m.Status == http.StatusUnauthorized {
		return enginehttp.Broken(engine.VLLM, r.Latency, "it requires an API key (vLLM --api-key); add the endpoint with --api-key-env VAR and set VAR")
	}
	var models modelsBody
	if err := m.JSON(&models); err != nil || models.Data == nil {
		return enginehttp.Foreign(engine.VLLM, "GET /v1/models: "+enginehttp.Describe(err, "no data list"))
	}
	for _, md := range *models.Data {
		if md.OwnedBy != "vllm" {
			return enginehttp.Foreign(engine.VLLM, "its models are owned_by "+md.OwnedBy)
		}
	}
	h, err := d.C.Get(ctx, ep, "/health")
	if err != nil {
		return enginehttp.NetworkObservation(err)
	}
	if h.Status == http.StatusServiceUnavailable {
		return engine.Observation{Outcome: engine.OutcomeBusy, Latency: r.Latency, Version: *v.Version, Reason: "GET /health answered 503 (vLLM's engine is not ready or died)"}
	}
	return engine.Observation{
		Outcome: engine.OutcomeOK, Latency: r.Latency, Version: *v.Version,
		Capabilities: engine.Capabilities{Chat: true, ChatStream: true, Completions: true, Embeddings: true, Tools: true},
	}
}

// Models lists GET /v1/models; max_model_len is the context length.
func (d *Driver) Models(ctx context.Context, ep engine.Endpoint) ([]engine.Model, error) {
	r, err := d.C.Get(ctx, ep, "/v1/models")
	var body modelsBody
	if err == nil {
		err = r.JSON(&body)
	}
	if err != nil || body.Data == nil {
		return nil, enginehttp.ModelsError(ep, r, err)
	}
	var out []engine.Model
	for _, m := range *body.Data {
		if engine.ValidModelName(m.ID) != nil {
			continue
		}
		model := engine.Model{
			ID: engine.ModelID(ep.ID, m.ID), EngineID: ep.ID, EngineKind: engine.VLLM, Name: m.ID,
			// vLLM does not say whether a model generates or embeds; both
			// routes are offered and the engine answers for itself.
			Capabilities: engine.Capabilities{Chat: true, ChatStream: true, Completions: true, Embeddings: true},
		}
		if m.MaxModelLen > 0 {
			n := m.MaxModelLen
			model.ContextLength = &n
		}
		out = append(out, model)
	}
	return out, nil
}

// BinaryCandidates implements engine.Installer (vLLM installs as a Python
// console script).
func (*Driver) BinaryCandidates(goos string, env func(string) string) (names, paths []string) {
	if goos == "windows" {
		return []string{"vllm.exe"}, nil
	}
	if home := env("HOME"); home != "" {
		paths = append(paths, filepath.Join(home, ".local", "bin", "vllm"))
	}
	return []string{"vllm"}, paths
}
