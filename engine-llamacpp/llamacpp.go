package llamacpp

import (
	"context"
	"net/http"
	"path"
	"path/filepath"
	"strings"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/engine/enginehttp"
)

// Driver is the llama.cpp (llama-server) engine driver.
type Driver struct{ C *enginehttp.Client }

var (
	_ engine.Driver    = (*Driver)(nil)
	_ engine.Installer = (*Driver)(nil)
)

// New returns a Driver using c.
func New(c *enginehttp.Client) *Driver { return &Driver{C: c} }

// Kind implements engine.Driver.
func (*Driver) Kind() engine.Kind { return engine.LlamaCPP }

// Habits implements engine.Driver, for llama-server b10470 (fixtures
// under shared/fixtures/engines/llamacpp): it closes the connection after
// every streamed response while announcing keep-alive; a stream asked for
// usage ends with a usage chunk (v1_chat_completions_stream_usage.http);
// /v1/messages is answered natively (api_families/). "n" > 1 returns one
// choice. Its native /v1/responses is not declared: the stream lacks
// sequence_number, output_index and content_index, and response.created
// has no output, so openai-node's responses.stream() throws on it
// (api_families/v1_responses_stream.http); FLM translates instead.
func (*Driver) Habits() engine.Habits {
	return engine.Habits{ClosesAfterStream: true, HonoursIncludeUsage: true, NativeMessages: true}
}

type errorBody struct {
	Error *struct {
		Message string `json:"message"`
		Type    string `json:"type"`
	} `json:"error"`
}

type propsBody struct {
	BuildInfo       *string `json:"build_info"`
	DefaultSettings *struct {
		NCtx int `json:"n_ctx"`
	} `json:"default_generation_settings"`
	Modalities struct {
		Vision bool `json:"vision"`
	} `json:"modalities"`
	ChatTemplateCaps struct {
		SupportsTools bool `json:"supports_tools"`
	} `json:"chat_template_caps"`
	Role string `json:"role"`
}

// loading reports llama-server's 503 while it loads its model:
// {"error":{"message":"Loading model","type":"unavailable_error",…}}.
func loading(r enginehttp.Response) bool {
	if r.Status != http.StatusServiceUnavailable {
		return false
	}
	var e errorBody
	_ = r.DecodeAny(&e)
	return e.Error != nil && e.Error.Type == "unavailable_error"
}

// Probe fingerprints llama-server: GET /health answers {"status":"ok"} (or
// the 503 "Loading model" error) and GET /props carries build_info and
// default_generation_settings. FLM's own proxy also answers /health, but
// has no /props: it is never taken for llama.cpp.
func (d *Driver) Probe(ctx context.Context, ep engine.Endpoint) engine.Observation {
	r, err := d.C.Get(ctx, ep, "/health")
	if err != nil {
		return enginehttp.NetworkObservation(err)
	}
	if loading(r) && strings.EqualFold(r.Header.Get("Server"), "llama.cpp") {
		return engine.Observation{Outcome: engine.OutcomeBusy, Latency: r.Latency, Reason: "loading its model (HTTP 503)"}
	}
	var h struct {
		Status string `json:"status"`
	}
	if err := r.JSON(&h); err != nil || h.Status != "ok" {
		return enginehttp.Foreign(engine.LlamaCPP, "GET /health: "+enginehttp.Describe(err, `no "status":"ok"`))
	}
	p, err := d.C.Get(ctx, ep, "/props")
	if err != nil {
		return enginehttp.NetworkObservation(err)
	}
	if loading(p) {
		return engine.Observation{Outcome: engine.OutcomeBusy, Latency: r.Latency, Reason: "loading its model (HTTP 503)"}
	}
	var props propsBody
	if err := p.JSON(&props); err != nil || props.BuildInfo == nil || props.DefaultSettings == nil {
		return enginehttp.Foreign(engine.LlamaCPP, "GET /props: "+enginehttp.Describe(err, "no build_info"))
	}
	return engine.Observation{
		Outcome: engine.OutcomeOK, Latency: r.Latency, Version: *props.BuildInfo,
		Capabilities: engine.Capabilities{
			Chat: true, ChatStream: true, Completions: true,
			Tools: props.ChatTemplateCaps.SupportsTools, Vision: props.Modalities.Vision,
		},
	}
}

type modelsBody struct {
	Data *[]struct {
		ID   string `json:"id"`
		Meta *struct {
			NCtx int `json:"n_ctx"`
		} `json:"meta"`
		Status *struct {
			Value string `json:"value"`
		} `json:"status"`
	} `json:"data"`
}

// Models lists GET /v1/models: one model in single-model mode (its alias,
// else its file path), several in router mode. The context length is the
// loaded context (meta.n_ctx), known only for loaded models.
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
		name := displayName(m.ID)
		model := engine.Model{
			ID: engine.ModelID(ep.ID, name), EngineID: ep.ID, EngineKind: engine.LlamaCPP, Name: name,
			Capabilities: engine.Capabilities{Chat: true, ChatStream: true, Completions: true},
		}
		if name != m.ID {
			model.Upstream = m.ID
		}
		if m.Meta != nil && m.Meta.NCtx > 0 {
			n := m.Meta.NCtx
			model.ContextLength = &n
		}
		out = append(out, model)
	}
	return out, nil
}

// displayName shortens the model file path llama-server reports when it
// runs without --alias ("/models/tiny-chat.gguf" → "tiny-chat"); aliases and
// router-mode names are kept as they are.
func displayName(id string) string {
	p := strings.ReplaceAll(id, "\\", "/")
	if !strings.Contains(p, "/") || !strings.HasSuffix(strings.ToLower(p), ".gguf") {
		return id
	}
	base := path.Base(p)
	if name := base[:len(base)-len(".gguf")]; name != "" {
		return name
	}
	return id
}

// BinaryCandidates implements engine.Installer. Only llama-server serves
// the HTTP API; generic names such as "server" are not looked up.
func (*Driver) BinaryCandidates(goos string, env func(string) string) (names, paths []string) {
	names = []string{"llama-server"}
	if p := env("LLAMA_CPP_PATH"); p != "" {
		paths = append(paths, p)
	}
	home := env("HOME")
	switch goos {
	case "windows":
		names = []string{"llama-server.exe"}
		paths = append(paths, `C:\Program Files\llama.cpp\llama-server.exe`, `C:\Program Files (x86)\llama.cpp\llama-server.exe`)
		if la := env("LOCALAPPDATA"); la != "" {
			paths = append(paths, filepath.Join(la, "Microsoft", "WinGet", "Links", "llama-server.exe"))
		}
	default:
		paths = append(paths, "/usr/local/bin/llama-server", "/usr/bin/llama-server", "/opt/llama.cpp/bin/llama-server", "/opt/homebrew/bin/llama-server")
		if home != "" {
			paths = append(paths, filepath.Join(home, ".local", "bin", "llama-server"), filepath.Join(home, "llama.cpp", "build", "bin", "llama-server"))
		}
	}
	return names, paths
}
