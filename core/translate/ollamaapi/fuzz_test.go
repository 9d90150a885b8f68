package ollamaapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/translate"
	"github.com/unjuno/flm/core/translate/internal/capture"
)

func addRequests(f *testing.F, names ...string) {
	for _, name := range names {
		x, err := capture.Load(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(x.ReqBody)
	}
}

func refused(t *testing.T, err error) {
	t.Helper()
	var te *translate.Error
	if !errors.As(err, &te) || te.Status != 400 || te.Message == "" || !json.Valid(ErrorBody(te.Message)) {
		t.Fatalf("error %#v", err)
	}
}

func validEngineBody(t *testing.T, out []byte, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("all capabilities, still refused: %v", err)
	}
	var c struct {
		Model string `json:"model"`
	}
	if err := json.Unmarshal(out, &c); err != nil || c.Model != "engine-name" {
		t.Fatalf("engine body %s: %v", out, err)
	}
}

var full = translate.Target{Model: "engine-name", Caps: allCaps}

func FuzzParseChat(f *testing.F) {
	addRequests(f, "ollama/api_chat.http", "ollama/api_chat_stream.http", "ollama/error_api_chat_malformed_json.http")
	f.Add([]byte(toolsChat))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseChat(body)
		if err != nil {
			refused(t, err)
			return
		}
		if r.LoadOnly {
			if !json.Valid(r.LoadResponse(translate.Env{})) {
				t.Fatal("load response")
			}
			return
		}
		out, err := r.ChatBody(full)
		validEngineBody(t, out, err)
		if _, err := r.ChatBody(translate.Target{Model: "m", Caps: engine.Capabilities{Chat: true}}); err == nil && (r.UsesTools || r.UsesImages) {
			t.Fatal("tools or images accepted for a text-only model")
		}
	})
}

func FuzzParseGenerate(f *testing.F) {
	addRequests(f, "ollama/api_generate.http", "ollama/api_generate_raw.http", "ollama/api_generate_unload_keep_alive_0.http")
	f.Add([]byte(`{"model":"m","prompt":"p","images":["` + png + `"],"format":{"type":"object"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseGenerate(body)
		if err != nil {
			refused(t, err)
			return
		}
		if r.LoadOnly {
			return
		}
		out, err := r.Body(full)
		validEngineBody(t, out, err)
	})
}

func FuzzParseEmbed(f *testing.F) {
	addRequests(f, "ollama/api_embed.http", "ollama/api_embed_batch.http", "ollama/api_embeddings_legacy.http")
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, parse := range []func([]byte) (*EmbedRequest, error){ParseEmbed, ParseEmbeddings} {
			r, err := parse(body)
			if err != nil {
				refused(t, err)
				continue
			}
			if r.LoadOnly {
				if !json.Valid(r.LoadResponse()) {
					t.Fatal("load response")
				}
				continue
			}
			out, err := r.EmbeddingsBody(full)
			validEngineBody(t, out, err)
		}
		if name, err := ParseShow(body); err == nil && name == "" {
			t.Fatal("show accepted without a name")
		}
	})
}

func FuzzResponse(f *testing.F) {
	for _, name := range []string{"llamacpp/v1_chat_completions.http", "llamacpp/v1_completions.http", "llamacpp/v1_embeddings.http"} {
		x, _ := capture.Load(name)
		f.Add(x.RespBody)
	}
	chat, _ := ParseChat([]byte(toolsChat))
	gen, _ := ParseGenerate([]byte(`{"model":"m","prompt":"p","raw":true}`))
	emb, _ := ParseEmbed([]byte(`{"model":"e","input":["a","b"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, conv := range []func() ([]byte, error){
			func() ([]byte, error) { return chat.Response(body, translate.Env{}, start) },
			func() ([]byte, error) { return gen.Response(body, translate.Env{}, start) },
			func() ([]byte, error) { return emb.Response(body, translate.Env{}, start) },
		} {
			out, err := conv()
			if err != nil {
				var te *translate.Error
				if !errors.As(err, &te) || te.Status != 502 {
					t.Fatalf("error %#v", err)
				}
				continue
			}
			if !json.Valid(out) {
				t.Fatalf("invalid JSON %s", out)
			}
		}
	})
}

func FuzzStream(f *testing.F) {
	for _, name := range []string{"llamacpp/v1_chat_completions_stream_usage.http", "llamacpp/v1_completions_stream.http"} {
		x, _ := capture.Load(name)
		p, _ := capture.Payloads(x.RespBody)
		f.Add(bytes.Join(p, []byte("\n")), false)
	}
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`+"\n[DONE]"), false)
	chat, _ := ParseChat([]byte(toolsChat))
	gen, _ := ParseGenerate([]byte(`{"model":"m","prompt":"p"}`))
	f.Fuzz(func(t *testing.T, in []byte, generate bool) {
		var s *Stream
		if generate {
			s = gen.NewStream(translate.Env{}, start)
		} else {
			s = chat.NewStream(translate.Env{}, start)
		}
		var out []byte
		for _, line := range bytes.Split(in, []byte("\n")) {
			out, _ = s.Feed(out, line)
		}
		out = s.End(out)
		if !s.Done() {
			t.Fatal("not done after End")
		}
		checkNDJSON(t, out, generate)
	})
}
