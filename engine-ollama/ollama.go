package ollama

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/engine/enginehttp"
)

// Driver is the Ollama engine driver.
type Driver struct{ C *enginehttp.Client }

var (
	_ engine.Driver    = (*Driver)(nil)
	_ engine.Installer = (*Driver)(nil)
)

// New returns a Driver using c.
func New(c *enginehttp.Client) *Driver { return &Driver{C: c} }

// Kind implements engine.Driver.
func (*Driver) Kind() engine.Kind { return engine.Ollama }

// Habits implements engine.Driver, for Ollama 0.33 (fixtures under
// shared/fixtures/engines/ollama): a stream asked for usage ends with a
// usage chunk (v1_chat_completions_stream_usage.http); "name" also serves
// "name:latest" (its implicit tag); /v1/messages and /v1/responses are
// answered natively (api_families/). "n" > 1 returns one choice.
func (*Driver) Habits() engine.Habits {
	return engine.Habits{HonoursIncludeUsage: true, LatestTagAlias: true, NativeMessages: true, NativeResponses: true}
}

type versionBody struct {
	Version *string `json:"version"`
}

type tagsBody struct {
	Models *[]struct {
		Name         string   `json:"name"`
		Model        string   `json:"model"`
		Capabilities []string `json:"capabilities"`
	} `json:"models"`
}

// Probe fingerprints Ollama: GET /api/version must be {"version": "…"}, and
// GET /api/tags {"models": […]}. Ollama has no "loading" state to report:
// requests for a loading model simply wait.
func (d *Driver) Probe(ctx context.Context, ep engine.Endpoint) engine.Observation {
	r, err := d.C.Get(ctx, ep, "/api/version")
	if err != nil {
		return enginehttp.NetworkObservation(err)
	}
	var v versionBody
	if r.Status == http.StatusTooManyRequests || r.Status == http.StatusServiceUnavailable {
		return engine.Observation{Outcome: engine.OutcomeBusy, Latency: r.Latency, Reason: fmt.Sprintf("answered HTTP %d", r.Status)}
	}
	if err := r.JSON(&v); err != nil || v.Version == nil || *v.Version == "" {
		return enginehttp.Foreign(engine.Ollama, "GET /api/version: "+enginehttp.Describe(err, "no version"))
	}
	t, err := d.C.Get(ctx, ep, "/api/tags")
	if err != nil {
		return enginehttp.NetworkObservation(err)
	}
	var tags tagsBody
	if err := t.JSON(&tags); err != nil || tags.Models == nil {
		return enginehttp.Broken(engine.Ollama, r.Latency, "GET /api/tags: %s", enginehttp.Describe(err, `no "models" list`))
	}
	return engine.Observation{
		Outcome: engine.OutcomeOK, Latency: r.Latency, Version: *v.Version,
		Capabilities: engine.Capabilities{Chat: true, ChatStream: true, Completions: true, Embeddings: true, Tools: true},
	}
}

type showBody struct {
	Capabilities []string       `json:"capabilities"`
	ModelInfo    map[string]any `json:"model_info"`
}

// showConcurrency bounds parallel /api/show calls: each reads a model's
// metadata from disk.
const showConcurrency = 4

// Models lists /api/tags, then asks POST /api/show per model for its
// capabilities and context length (/api/tags and /api/show may disagree
// about capabilities; /api/show is right).
func (d *Driver) Models(ctx context.Context, ep engine.Endpoint) ([]engine.Model, error) {
	r, err := d.C.Get(ctx, ep, "/api/tags")
	var tags tagsBody
	if err == nil {
		err = r.JSON(&tags)
	}
	if err != nil || tags.Models == nil {
		return nil, enginehttp.ModelsError(ep, r, err)
	}
	models := make([]engine.Model, 0, len(*tags.Models))
	for _, m := range *tags.Models {
		if engine.ValidModelName(m.Name) != nil {
			continue
		}
		models = append(models, engine.Model{
			ID: engine.ModelID(ep.ID, m.Name), EngineID: ep.ID, EngineKind: engine.Ollama, Name: m.Name,
			Capabilities: capabilities(m.Capabilities),
		})
	}
	sem := make(chan struct{}, showConcurrency)
	var wg sync.WaitGroup
	for i := range models {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			d.show(ctx, ep, &models[i])
		}()
	}
	wg.Wait()
	return models, nil
}

// show fills in what /api/show knows; a failure keeps the /api/tags view.
func (d *Driver) show(ctx context.Context, ep engine.Endpoint, m *engine.Model) {
	r, err := d.C.Do(ctx, ep, http.MethodPost, "/api/show", map[string]string{"model": m.Name})
	var s showBody
	if err != nil || r.JSON(&s) != nil {
		return
	}
	if s.Capabilities != nil {
		m.Capabilities = capabilities(s.Capabilities)
	}
	for k, v := range s.ModelInfo {
		if n, ok := v.(float64); ok && strings.HasSuffix(k, ".context_length") && n > 0 && n < 1<<31 {
			c := int(n)
			m.ContextLength = &c
		}
	}
}

// capabilities maps Ollama's capability names ("completion", "embedding",
// "tools", "vision", "insert", "thinking") to FLM's.
func capabilities(names []string) engine.Capabilities {
	var c engine.Capabilities
	for _, n := range names {
		switch n {
		case "completion":
			c.Chat, c.ChatStream, c.Completions = true, true, true
		case "embedding":
			c.Embeddings = true
		case "tools":
			c.Tools = true
		case "vision":
			c.Vision = true
		}
	}
	return c
}

// BinaryCandidates implements engine.Installer.
func (*Driver) BinaryCandidates(goos string, env func(string) string) (names, paths []string) {
	names = []string{"ollama"}
	home := env("HOME")
	switch goos {
	case "windows":
		if la := env("LOCALAPPDATA"); la != "" {
			paths = append(paths, filepath.Join(la, "Programs", "Ollama", "ollama.exe"))
		}
		paths = append(paths, `C:\Program Files\Ollama\ollama.exe`)
	case "darwin":
		paths = append(paths, "/Applications/Ollama.app/Contents/Resources/ollama", "/usr/local/bin/ollama", "/opt/homebrew/bin/ollama")
	default:
		paths = append(paths, "/usr/local/bin/ollama", "/usr/bin/ollama")
		if home != "" {
			paths = append(paths, filepath.Join(home, ".local", "bin", "ollama"))
		}
	}
	return names, paths
}
