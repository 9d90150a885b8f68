package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/unjuno/flm/core/engine"
)

// secretCatalog has engines at addresses a key holder must never learn:
// key holders may be remote devices, and an engine's URL maps the private
// network behind the proxy.
func secretCatalog() (*Catalog, []engine.Endpoint) {
	eps := []engine.Endpoint{
		{ID: "gpu", Kind: engine.VLLM, BaseURL: "http://10.20.30.40:8000/secret-prefix"},
		{ID: "box", Kind: engine.Ollama, BaseURL: "https://ollama.lan.internal:11434"},
		{ID: "off", Kind: engine.LMStudio, BaseURL: "http://192.168.77.5:1234"},
		{ID: "dead", Kind: engine.LlamaCPP, BaseURL: "http://[fd00::77]:8080"},
	}
	states := []engine.State{
		{ID: "gpu", Status: engine.Status{State: engine.RunningHealthy}},
		{ID: "box", Status: engine.Status{State: engine.RunningHealthy}, Habits: engine.Habits{LatestTagAlias: true}},
		{ID: "off", Status: engine.Status{State: engine.ErrorNetwork}},
		{ID: "dead", Status: engine.Status{State: engine.InstalledOnly}},
	}
	m := func(e, n string) engine.Model { return engine.Model{ID: engine.ModelID(e, n), EngineID: e, Name: n} }
	return NewCatalog(eps, states, []engine.Model{m("gpu", "m"), m("box", "m"), m("box", "x:latest"), m("off", "y")}), eps
}

// Every gateway error a client can trigger names engines by id and kind,
// never by URL (host, port or path prefix).
func TestErrorsNeverRevealEngineURLs(t *testing.T) {
	c, eps := secretCatalog()
	var secrets []string
	for _, ep := range eps {
		u, _ := url.Parse(ep.BaseURL)
		secrets = append(secrets, ep.BaseURL, u.Host, u.Hostname())
		if u.Path != "" {
			secrets = append(secrets, u.Path)
		}
	}
	models := []string{"flm://off/y", "flm://dead/z", "flm://ghost/x", "flm://box/nope", "nope", "m", "flm://gpu/m", "x", "flm://bad id/x", "flm://box/"}
	bodies := map[Route]string{
		Chat:        `{"model":%s,"messages":[{"role":"user","content":"hi"}],"n":2,"stream":true}`,
		Completions: `{"model":%s,"prompt":"hi","n":3}`,
		Embeddings:  `{"model":%s,"input":"hi"}`,
	}
	seen := map[Kind]string{}
	check := func(what string, err error) {
		t.Helper()
		var ge *Error
		if err == nil {
			return
		}
		if !errors.As(err, &ge) {
			t.Fatalf("%s: %v is not a gateway error", what, err)
		}
		seen[ge.Kind] = ge.Message
		all := strings.Join(append([]string{ge.Message, ge.Param, ge.Code}, ge.Candidates...), "\n")
		for _, s := range secrets {
			if strings.Contains(all, s) {
				t.Errorf("%s: error reveals %q: %s", what, s, all)
			}
		}
	}
	for route, format := range bodies {
		for _, model := range models {
			body := fmt.Sprintf(format, `"`+model+`"`)
			r, err := ParseRequest(route, []byte(body))
			check(body, err)
			if err != nil {
				continue
			}
			tg, err := c.Resolve(r.Model)
			check(model, err)
			if err != nil {
				continue
			}
			_, err = r.Rewrite(tg)
			check(body+" → "+tg.Endpoint.ID, err)
		}
	}
	for _, bad := range []string{``, `[1]`, `{"model":5}`, `{"MODEL":"m"}`, `{"model":"m","messages":[{"content":"x"}]}`} {
		_, err := ParseRequest(Chat, []byte(bad))
		check(bad, err)
	}
	for _, k := range []Kind{InvalidRequest, Unsupported, ModelNotFound, Ambiguous, EngineUnavailable} {
		if _, ok := seen[k]; !ok {
			t.Errorf("no error of kind %d was triggered; the test no longer covers it", k)
		}
	}
	// Unavailable engines are named by id and kind.
	for model, want := range map[string]string{
		"flm://off/y":  "engine off (LM Studio) is not running",
		"flm://dead/z": "engine dead (llama.cpp) is not running",
	} {
		_, err := c.Resolve(model)
		if err == nil || err.Error() != want {
			t.Errorf("Resolve(%s) = %v, want %q", model, err, want)
		}
	}
}
