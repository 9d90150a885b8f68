package cli

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/engine/enginehttp"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/core/settings"
	llamacpp "github.com/unjuno/flm/engine-llamacpp"
	lmstudio "github.com/unjuno/flm/engine-lmstudio"
	ollama "github.com/unjuno/flm/engine-ollama"
	vllm "github.com/unjuno/flm/engine-vllm"
)

// EnginesCmd is `flm engines`.
type EnginesCmd struct {
	Detect EnginesDetectCmd `cmd:"" help:"Detect running and installed engines."`
	Add    EnginesAddCmd    `cmd:"" help:"Add an engine endpoint (another port or host)."`
	List   EnginesListCmd   `cmd:"" help:"List the endpoints FLM checks."`
	Remove EnginesRemoveCmd `cmd:"" help:"Remove an endpoint added with engines add."`
}

// Drivers builds one driver per kind on a shared HTTP client.
func Drivers(getenv func(string) string) map[engine.Kind]engine.Driver {
	c := enginehttp.New(getenv)
	return map[engine.Kind]engine.Driver{
		engine.Ollama:   ollama.New(c),
		engine.VLLM:     vllm.New(c),
		engine.LMStudio: lmstudio.New(c),
		engine.LlamaCPP: llamacpp.New(c),
	}
}

func (a *App) detector() (*engine.Detector, error) {
	d, err := a.DB(store.Config)
	if err != nil {
		return nil, err
	}
	svc := &settings.Service{Store: store.Settings{DB: d}}
	lat, err := svc.Int(a.ctx, settings.HealthLatencyThresholdMS)
	if err != nil {
		return nil, err
	}
	fails, err := svc.Int(a.ctx, settings.MaxNetworkFailures)
	if err != nil {
		return nil, err
	}
	drivers, err := a.engineDrivers(d) // through the stored egress (egress.go)
	if err != nil {
		return nil, err
	}
	look := a.lookPath
	if look == nil {
		look = exec.LookPath
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	st := store.Engines{DB: d}
	return &engine.Detector{
		Drivers:    drivers,
		Defaults:   engine.DefaultEndpoints(a.Getenv),
		Endpoints:  st,
		Cache:      st,
		Log:        st,
		Installed:  engine.InstalledFunc(drivers, runtime.GOOS, a.Getenv, look, exists),
		Thresholds: engine.Thresholds{Latency: time.Duration(lat) * time.Millisecond, MaxNetworkFailures: fails},
	}, nil
}

func capsText(c engine.Capabilities) string {
	var s []string
	for _, f := range []struct {
		on   bool
		name string
	}{{c.Chat, "chat"}, {c.ChatStream, "stream"}, {c.Completions, "completions"}, {c.Embeddings, "embeddings"}, {c.Tools, "tools"}, {c.Vision, "vision"}} {
		if f.on {
			s = append(s, f.name)
		}
	}
	return strings.Join(s, ",")
}

// EnginesDetectCmd is `flm engines detect`.
type EnginesDetectCmd struct {
	Engine string `help:"Only this engine id." placeholder:"ID"`
	Fresh  bool   `help:"Ignore cached results (kept 300 s)."`
}

// detect runs a detection for the engines and models commands.
func (a *App) detect(engineID string, fresh bool) (*engine.Detector, []engine.State, error) {
	det, err := a.detector()
	if err != nil {
		return nil, nil, err
	}
	states, err := det.Detect(a.ctx, engine.DetectOptions{EngineID: engineID, Fresh: fresh})
	return det, states, err
}

// Run detects engines.
func (c EnginesDetectCmd) Run(a *App) error {
	_, states, err := a.detect(c.Engine, c.Fresh)
	if err != nil {
		return err
	}
	if states == nil {
		states = []engine.State{}
	}
	return a.print(map[string]any{"engines": states}, func(w io.Writer) {
		if len(states) == 0 {
			fmt.Fprintln(w, "No engine is running or installed. Start Ollama, LM Studio, vLLM or llama-server, or add one with `flm engines add`.")
			return
		}
		t := table(w, "ID", "KIND", "STATE", "LATENCY", "VERSION", "URL", "CAPABILITIES", "REASON")
		for _, s := range states {
			lat := ""
			if engine.Running(s.Status.State) {
				lat = fmt.Sprintf("%d ms", s.Status.LatencyMS)
			}
			t.row(s.ID, string(s.Kind), string(s.Status.State), lat, s.Version, s.BaseURL, capsText(s.Capabilities), s.Status.Reason)
		}
		t.flush()
	})
}

func (a *App) registry() (*engine.Registry, error) {
	d, err := a.DB(store.Config)
	if err != nil {
		return nil, err
	}
	return &engine.Registry{Store: store.Engines{DB: d}, Defaults: engine.DefaultEndpoints(a.Getenv)}, nil
}

// EnginesAddCmd is `flm engines add`.
type EnginesAddCmd struct {
	Kind      string `required:"" help:"ollama, vllm, lmstudio or llamacpp."`
	URL       string `required:"" name:"url" help:"Base URL, e.g. http://127.0.0.1:8001."`
	ID        string `help:"Engine id in flm:// model ids (default: <kind>-<n>)." placeholder:"ID"`
	APIKeyEnv string `name:"api-key-env" help:"Environment variable holding the engine's own API key (never stored)." placeholder:"VAR"`
}

// Run adds the endpoint; running proxies route to it when this returns.
func (c EnginesAddCmd) Run(a *App) error {
	r, err := a.registry()
	if err != nil {
		return err
	}
	if err := refuseKnownURL(a.ctx, r, c.Kind, c.URL); err != nil {
		return err
	}
	ep, err := r.Add(a.ctx, c.Kind, c.URL, c.ID, c.APIKeyEnv)
	if err != nil {
		return err
	}
	out := struct {
		engine.Endpoint
		Proxies []proxyctl.Result `json:"proxies"`
	}{ep, a.applyToProxies(proxyctl.ReloadAll)}
	return a.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "Added %s (%s) at %s.\n", ep.ID, ep.Kind, ep.BaseURL)
		proxiesText(w, out.Proxies)
	})
}

// refuseKnownURL refuses to add an engine FLM already checks at that URL:
// the default endpoint of the same kind, or any user-added endpoint. A
// second entry would serve every model twice, and bare model names would
// become ambiguous.
func refuseKnownURL(ctx context.Context, r *engine.Registry, kind, rawURL string) error {
	k, err := engine.ParseKind(kind)
	if err != nil {
		return nil // Add reports it
	}
	base, err := engine.NormalizeURL(rawURL)
	if err != nil {
		return nil
	}
	eps, err := r.List(ctx)
	if err != nil {
		return err
	}
	key := engineURLKey(base)
	for _, ep := range eps {
		if engineURLKey(ep.BaseURL) != key {
			continue
		}
		if ep.UserAdded {
			return flmerr.New(flmerr.InvalidArgument, "engine %q already points at %s (added with `flm engines add`); to add it under another id or kind, remove it first with `flm engines remove %s`", ep.ID, ep.BaseURL, ep.ID)
		}
		if ep.Kind == k {
			return flmerr.New(flmerr.InvalidArgument, "FLM already checks %s as the default %s engine %q (its models are flm://%s/<model>); use that id instead of adding the engine again", ep.BaseURL, engine.DisplayName(k), ep.ID, ep.ID)
		}
	}
	return nil
}

// engineURLKey is the address an engine URL reaches: scheme and host
// without case, the default port spelled out, no trailing slash, and
// every loopback name (localhost, 127.0.0.1, [::1]) alike.
func engineURLKey(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if a, err := netip.ParseAddr(host); err == nil && a.Unmap().IsLoopback() || host == "localhost" {
		host = "loopback"
	} else if err == nil {
		host = a.Unmap().String()
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	return scheme + "://" + host + ":" + port + strings.TrimRight(u.EscapedPath(), "/")
}

// EnginesListCmd is `flm engines list`.
type EnginesListCmd struct{}

// Run lists endpoints.
func (EnginesListCmd) Run(a *App) error {
	r, err := a.registry()
	if err != nil {
		return err
	}
	eps, err := r.List(a.ctx)
	if err != nil {
		return err
	}
	return a.print(map[string]any{"engines": eps}, func(w io.Writer) {
		t := table(w, "ID", "KIND", "URL", "KEY FROM", "SOURCE")
		for _, ep := range eps {
			src := "default"
			if ep.UserAdded {
				src = "added"
			}
			t.row(ep.ID, string(ep.Kind), ep.BaseURL, ep.APIKeyEnv, src)
		}
		t.flush()
	})
}

// EnginesRemoveCmd is `flm engines remove ID`.
type EnginesRemoveCmd struct {
	ID string `arg:"" help:"Engine id."`
}

// Run removes the endpoint.
func (c EnginesRemoveCmd) Run(a *App) error {
	r, err := a.registry()
	if err != nil {
		return err
	}
	if err := r.Remove(a.ctx, c.ID); err != nil {
		return err
	}
	proxies := a.applyToProxies(proxyctl.ReloadAll)
	return a.print(map[string]any{"id": c.ID, "removed": true, "proxies": proxies}, func(w io.Writer) {
		fmt.Fprintf(w, "Removed %s.\n", c.ID)
		proxiesText(w, proxies)
	})
}

// ModelsCmd is `flm models`.
type ModelsCmd struct {
	List ModelsListCmd `cmd:"" help:"List the models of every reachable engine."`
}

// ModelsListCmd is `flm models list`.
type ModelsListCmd struct {
	Engine string `help:"Only this engine id." placeholder:"ID"`
	Fresh  bool   `help:"Detect engines again instead of using the cache."`
}

type engineFailure struct {
	EngineID string      `json:"engine_id"`
	Code     flmerr.Code `json:"code"`
	Message  string      `json:"message"`
}

// Run lists models.
func (c ModelsListCmd) Run(a *App) error {
	det, states, err := a.detect(c.Engine, c.Fresh)
	if err != nil {
		return err
	}
	models, failed := det.ListModels(a.ctx, states)
	if models == nil {
		models = []engine.Model{}
	}
	failures := []engineFailure{}
	for id, err := range failed {
		failures = append(failures, engineFailure{EngineID: id, Code: flmerr.CodeOf(err), Message: err.Error()})
	}
	return a.print(map[string]any{"models": models, "errors": failures}, func(w io.Writer) {
		t := table(w, "MODEL", "ENGINE", "CONTEXT", "CAPABILITIES")
		for _, m := range models {
			ctxLen := ""
			if m.ContextLength != nil {
				ctxLen = fmt.Sprint(*m.ContextLength)
			}
			t.row(m.ID, m.EngineID, ctxLen, capsText(m.Capabilities))
		}
		t.flush()
		for _, f := range failures {
			fmt.Fprintf(w, "%s: %s\n", f.EngineID, cleanCell(f.Message))
		}
	})
}
