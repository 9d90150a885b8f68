package lmstudio

import (
	"context"
	"path/filepath"
	"slices"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/engine/enginehttp"
)

// Driver is the LM Studio engine driver.
type Driver struct{ C *enginehttp.Client }

var (
	_ engine.Driver    = (*Driver)(nil)
	_ engine.Installer = (*Driver)(nil)
)

// New returns a Driver using c.
func New(c *enginehttp.Client) *Driver { return &Driver{C: c} }

// Kind implements engine.Driver.
func (*Driver) Kind() engine.Kind { return engine.LMStudio }

// Habits implements engine.Driver, from LM Studio's API changelog:
// stream_options.include_usage since 0.3.18. "n" > 1 returns one choice.
// POST /v1/responses (0.3.29) and the Anthropic-compatible POST
// /v1/messages (0.4.1) are not declared: no capture shows the official
// SDKs accept those answers, and an older LM Studio answers an unknown
// route with HTTP 200 and an error body, which a client would take for an
// answer; FLM translates both to Chat Completions.
func (*Driver) Habits() engine.Habits {
	return engine.Habits{HonoursIncludeUsage: true}
}

type v0Model struct {
	ID               string   `json:"id"`
	Type             *string  `json:"type"`
	State            *string  `json:"state"`
	MaxContextLength int      `json:"max_context_length"`
	Capabilities     []string `json:"capabilities"`
}

type v0Models struct {
	Data *[]v0Model `json:"data"`
	// LM Studio answers unknown routes with HTTP 200 and this field.
	Error any `json:"error"`
}

// Probe fingerprints LM Studio through its native REST API: GET
// /api/v0/models lists models with "type" and "state", and GET
// /lmstudio-greeting says {"lmstudio":true} (what LM Studio's own CLI
// checks). The OpenAI-compatible GET /v1/models must answer too. LM Studio
// answers unknown routes with 200 and an "error" field, so a 200 alone
// proves nothing.
func (d *Driver) Probe(ctx context.Context, ep engine.Endpoint) engine.Observation {
	r, err := d.C.Get(ctx, ep, "/api/v0/models")
	if err != nil {
		return enginehttp.NetworkObservation(err)
	}
	var body v0Models
	if err := r.JSON(&body); err != nil || body.Data == nil || body.Error != nil {
		return enginehttp.Foreign(engine.LMStudio, "GET /api/v0/models: "+enginehttp.Describe(err, "no model list"))
	}
	shaped := len(*body.Data) > 0
	for _, m := range *body.Data {
		shaped = shaped && m.Type != nil && m.State != nil
	}
	if !shaped {
		g, err := d.C.Get(ctx, ep, "/lmstudio-greeting")
		if err != nil {
			return enginehttp.NetworkObservation(err)
		}
		var greet struct {
			LMStudio bool `json:"lmstudio"`
		}
		if err := g.JSON(&greet); err != nil || !greet.LMStudio {
			return enginehttp.Foreign(engine.LMStudio, "GET /lmstudio-greeting: "+enginehttp.Describe(err, "not LM Studio's greeting"))
		}
	}
	o, err := d.C.Get(ctx, ep, "/v1/models")
	if err != nil {
		return enginehttp.NetworkObservation(err)
	}
	var oai struct {
		Data *[]struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := o.JSON(&oai); err != nil || oai.Data == nil {
		return enginehttp.Broken(engine.LMStudio, r.Latency, "GET /v1/models: %s", enginehttp.Describe(err, "no data list"))
	}
	caps := engine.Capabilities{Chat: true, ChatStream: true, Completions: true, Embeddings: true}
	for _, m := range *body.Data {
		c := modelCaps(m)
		caps.Tools = caps.Tools || c.Tools
		caps.Vision = caps.Vision || c.Vision
	}
	return engine.Observation{Outcome: engine.OutcomeOK, Latency: r.Latency, Capabilities: caps}
}

// modelCaps maps LM Studio's model type (llm, vlm, embeddings) and
// capabilities (tool_use) to FLM's.
func modelCaps(m v0Model) engine.Capabilities {
	var c engine.Capabilities
	typ := ""
	if m.Type != nil {
		typ = *m.Type
	}
	switch typ {
	case "embeddings":
		c.Embeddings = true
	default:
		c.Chat, c.ChatStream, c.Completions = true, true, true
		c.Vision = typ == "vlm"
	}
	c.Tools = slices.Contains(m.Capabilities, "tool_use")
	return c
}

// Models lists GET /api/v0/models, which (unlike /v1/models) tells each
// model's type and maximum context length. Models that are downloaded but
// not loaded are listed: LM Studio loads them on first use.
func (d *Driver) Models(ctx context.Context, ep engine.Endpoint) ([]engine.Model, error) {
	r, err := d.C.Get(ctx, ep, "/api/v0/models")
	var body v0Models
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
		model := engine.Model{ID: engine.ModelID(ep.ID, m.ID), EngineID: ep.ID, EngineKind: engine.LMStudio, Name: m.ID, Capabilities: modelCaps(m)}
		if m.MaxContextLength > 0 {
			n := m.MaxContextLength
			model.ContextLength = &n
		}
		out = append(out, model)
	}
	return out, nil
}

// BinaryCandidates implements engine.Installer: the `lms` CLI or the app.
func (*Driver) BinaryCandidates(goos string, env func(string) string) (names, paths []string) {
	home := env("HOME")
	switch goos {
	case "windows":
		if up := env("USERPROFILE"); up != "" {
			paths = append(paths, filepath.Join(up, ".lmstudio", "bin", "lms.exe"))
		}
		if la := env("LOCALAPPDATA"); la != "" {
			paths = append(paths, filepath.Join(la, "Programs", "LM Studio", "LM Studio.exe"))
		}
		return []string{"lms.exe"}, paths
	case "darwin":
		paths = append(paths, "/Applications/LM Studio.app")
	}
	if home != "" {
		paths = append(paths, filepath.Join(home, ".lmstudio", "bin", "lms"))
	}
	return []string{"lms"}, paths
}
