package gateway

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/unjuno/flm/core/engine"
)

// PRODUCT.md §6: a stream ends with a usage chunk only when the client
// asked (stream_options.include_usage: true). FLM forwards stream_options
// as the client sent it, never adds include_usage, and drops
// stream_options from a request that does not stream (vLLM refuses it).
func TestRewriteUsageAsTheClientAsked(t *testing.T) {
	tg := Target{Endpoint: engine.Endpoint{ID: "e", Kind: "fifth"}, Model: "up", Habits: engine.Habits{HonoursIncludeUsage: true}}
	cases := []struct {
		name  string
		route Route
		body  string
		want  string // the exact body the engine receives
		usage bool   // WantsUsage
	}{
		{"stream without stream_options: nothing added", Chat,
			`{"model":"m",` + msgs + `,"stream":true}`,
			`{"model":"up",` + msgs + `,"stream":true}`, false},
		{"client asked for usage", Chat,
			`{"model":"m",` + msgs + `,"stream":true,"stream_options":{"include_usage":true}}`,
			`{"model":"up",` + msgs + `,"stream":true,"stream_options":{"include_usage":true}}`, true},
		{"client said no", Chat,
			`{"model":"m",` + msgs + `,"stream":true,"stream_options":{"include_usage":false}}`,
			`{"model":"up",` + msgs + `,"stream":true,"stream_options":{"include_usage":false}}`, false},
		{"other stream options only: include_usage not added", Chat,
			`{"model":"m",` + msgs + `,"stream":true,"stream_options":{"x":1}}`,
			`{"model":"up",` + msgs + `,"stream":true,"stream_options":{"x":1}}`, false},
		{"include_usage null", Chat,
			`{"stream":true,"stream_options":{"include_usage":null,"x":[1]},"model":"m",` + msgs + `}`,
			`{"stream":true,"stream_options":{"include_usage":null,"x":[1]},"model":"up",` + msgs + `}`, false},
		{"stream_options null", Chat,
			`{"model":"m",` + msgs + `,"stream":true,"stream_options":null}`,
			`{"model":"up",` + msgs + `,"stream":true,"stream_options":null}`, false},
		{"completions asked for usage", Completions,
			`{"model":"m","prompt":"once","stream":true,"stream_options":{"include_usage":true}}`,
			`{"model":"up","prompt":"once","stream":true,"stream_options":{"include_usage":true}}`, true},
		{"no stream: stream_options dropped", Chat,
			`{"model":"m",` + msgs + `,"stream_options":{"include_usage":true}}`,
			`{"model":"up",` + msgs + `}`, false},
		{"stream false: stream_options dropped", Chat,
			`{"model":"m","stream":false,"stream_options":{"include_usage":true},` + msgs + `}`,
			`{"model":"up","stream":false,` + msgs + `}`, false},
		{"embeddings never stream", Embeddings,
			`{"model":"m","input":"x","stream_options":{"include_usage":true}}`,
			`{"model":"up","input":"x"}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseRequest(c.route, []byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			out, err := r.Rewrite(tg)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != c.want {
				t.Fatalf("engine receives\n %s\nwant\n %s", out, c.want)
			}
			if r.WantsUsage() != c.usage {
				t.Fatalf("WantsUsage = %v, want %v", r.WantsUsage(), c.usage)
			}
		})
	}
}

func TestStreamOptionsValidated(t *testing.T) {
	for body, param := range map[string]string{
		`{"model":"m",` + msgs + `,"stream":true,"stream_options":"yes"}`:                    "stream_options",
		`{"model":"m",` + msgs + `,"stream":true,"stream_options":[]}`:                       "stream_options",
		`{"model":"m",` + msgs + `,"stream_options":5}`:                                      "stream_options",
		`{"model":"m",` + msgs + `,"stream":true,"stream_options":{"include_usage":"yes"}}`:  "stream_options.include_usage",
		`{"model":"m",` + msgs + `,"stream":true,"stream_options":{"include_usage":1}}`:      "stream_options.include_usage",
		`{"model":"m",` + msgs + `,"stream":true,"stream_options":{"include_usage":{}}}`:     "stream_options.include_usage",
		`{"model":"m","prompt":"p","stream":true,"stream_options":{"include_usage":"true"}}`: "stream_options.include_usage",
	} {
		route := Chat
		if strings.Contains(body, "prompt") {
			route = Completions
		}
		_, err := ParseRequest(route, []byte(body))
		var ge *Error
		if !errors.As(err, &ge) || ge.Kind != InvalidRequest || ge.Param != param {
			t.Errorf("%s = %v (param %q), want param %q", body, err, paramOf(ge), param)
		}
	}
}

// "n" > 1 follows the engine's declared habits, not its kind: a made-up
// fifth kind that returns n choices gets n through, and a vLLM endpoint
// whose driver does not declare MultipleChoices is refused.
func TestMultipleChoicesFollowHabits(t *testing.T) {
	r, err := ParseRequest(Chat, []byte(`{"model":"m",`+msgs+`,"n":2}`))
	if err != nil {
		t.Fatal(err)
	}
	fifth := Target{Endpoint: engine.Endpoint{ID: "f", Kind: "fifth"}, Model: "up", Habits: engine.Habits{MultipleChoices: true}}
	out, err := r.Rewrite(fifth)
	var got map[string]any
	if err != nil || json.Unmarshal(out, &got) != nil || got["n"] != float64(2) {
		t.Fatalf("n=2 to an engine with MultipleChoices: %s, %v", out, err)
	}
	for _, tg := range []Target{
		{Endpoint: engine.Endpoint{ID: "v", Kind: engine.VLLM}, Model: "up"},
		{Endpoint: engine.Endpoint{ID: "f", Kind: "fifth"}, Model: "up", Habits: engine.Habits{HonoursIncludeUsage: true, LatestTagAlias: true}},
	} {
		_, err := r.Rewrite(tg)
		var ge *Error
		if !errors.As(err, &ge) || ge.Kind != Unsupported || ge.Code != "unsupported_parameter" || ge.Param != "n" ||
			!strings.HasPrefix(ge.Message, engine.DisplayName(tg.Endpoint.Kind)+` does not support "n" > 1`) {
			t.Errorf("n=2 to %s without MultipleChoices = %v", tg.Endpoint.Kind, err)
		}
	}
	// n 1 and null mean one choice: fine everywhere.
	for _, body := range []string{`{"model":"m",` + msgs + `,"n":1}`, `{"model":"m",` + msgs + `,"n":null}`} {
		r, _ := ParseRequest(Chat, []byte(body))
		if out, err := r.Rewrite(Target{Endpoint: engine.Endpoint{Kind: "fifth"}, Model: "up"}); err != nil || !strings.Contains(string(out), `"n":`) {
			t.Errorf("%s: %s, %v", body, out, err)
		}
	}
}

// The ":latest" alias follows Habits.LatestTagAlias, not the kind.
func TestLatestAliasFollowsHabits(t *testing.T) {
	eps := []engine.Endpoint{
		{ID: "plain", Kind: engine.Ollama, BaseURL: "http://127.0.0.1:11434"},
		{ID: "fifth", Kind: "fifth", BaseURL: "http://127.0.0.1:9999"},
	}
	states := []engine.State{
		{ID: "plain", Kind: engine.Ollama, Status: engine.Status{State: engine.RunningHealthy}},
		{ID: "fifth", Kind: "fifth", Status: engine.Status{State: engine.RunningHealthy}, Habits: engine.Habits{LatestTagAlias: true}},
	}
	m := func(e string, k engine.Kind, n string) engine.Model {
		return engine.Model{ID: engine.ModelID(e, n), EngineID: e, EngineKind: k, Name: n}
	}
	c := NewCatalog(eps, states, []engine.Model{m("plain", engine.Ollama, "a:latest"), m("fifth", "fifth", "b:latest")})
	for _, in := range []string{"b", "flm://fifth/b", "b:latest"} {
		tg, err := c.Resolve(in)
		if err != nil || tg.Endpoint.ID != "fifth" || tg.Model != "b:latest" || tg.ID != "flm://fifth/b:latest" || !tg.Habits.LatestTagAlias {
			t.Errorf("Resolve(%q) = %+v, %v", in, tg, err)
		}
	}
	for _, in := range []string{"a", "flm://plain/a"} {
		var ge *Error
		if _, err := c.Resolve(in); !errors.As(err, &ge) || ge.Kind != ModelNotFound {
			t.Errorf("Resolve(%q) = %v: aliased without the habit", in, err)
		}
	}
	if tg, err := c.Resolve("a:latest"); err != nil || tg.Endpoint.ID != "plain" {
		t.Errorf("Resolve(a:latest) = %+v, %v", tg, err)
	}
}
