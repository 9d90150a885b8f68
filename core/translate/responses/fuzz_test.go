package responses

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/translate"
	"github.com/unjuno/flm/core/translate/internal/capture"
)

func FuzzParseRequest(f *testing.F) {
	for _, name := range []string{"llamacpp/v1_responses.http", "llamacpp/v1_responses_messages.http", "llamacpp/v1_responses_stream.http"} {
		x, _ := capture.Load(name)
		f.Add(x.ReqBody)
	}
	f.Add([]byte(toolsReq))
	f.Add([]byte(`{"model":"m","input":[{"role":"user","content":[{"type":"input_image","image_url":"https://x/a.png"}]}],"text":{"format":{"type":"json_schema","name":"n","schema":{}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRequest(body)
		if err != nil {
			var te *translate.Error
			if !errors.As(err, &te) || te.Status != 400 || te.Message == "" {
				t.Fatalf("error %#v", err)
			}
			return
		}
		out, err := r.ChatBody(translate.Target{Model: "engine-name", Caps: allCaps})
		if err != nil {
			t.Fatalf("all capabilities, still refused: %v", err)
		}
		var c struct {
			Model string `json:"model"`
		}
		if err := json.Unmarshal(out, &c); err != nil || c.Model != "engine-name" {
			t.Fatalf("engine body %s: %v", out, err)
		}
		if _, err := r.ChatBody(translate.Target{Model: "m", Caps: engine.Capabilities{Chat: true}}); err == nil && (r.UsesTools || r.UsesImages) {
			t.Fatal("tools or images accepted for a text-only model")
		}
		// The response object echoes the request: it must stay valid JSON.
		resp, err := r.Response([]byte(`{"choices":[{"index":0,"message":{"content":"x"},"finish_reason":"stop"}]}`), translate.Env{})
		if err != nil || !json.Valid(resp) {
			t.Fatalf("response %s: %v", resp, err)
		}
	})
}

func FuzzResponse(f *testing.F) {
	for _, name := range []string{"llamacpp/v1_chat_completions.http", "ollama/v1_chat_completions.http", "vllm/v1_chat_completions.http"} {
		x, _ := capture.Load(name)
		f.Add(x.RespBody)
	}
	r, _ := ParseRequest([]byte(toolsReq))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := r.Response(body, translate.Env{})
		if err != nil {
			var te *translate.Error
			if !errors.As(err, &te) || te.Status != 502 {
				t.Fatalf("error %#v", err)
			}
			return
		}
		var v struct {
			Object string
			Output []json.RawMessage
			Status string
		}
		if err := json.Unmarshal(out, &v); err != nil || v.Object != "response" || len(v.Output) == 0 || v.Status == "" {
			t.Fatalf("response %s: %v", out, err)
		}
	})
}

func FuzzStream(f *testing.F) {
	for _, name := range []string{"llamacpp/v1_chat_completions_stream_usage.http", "vllm/v1_chat_completions_stream.http"} {
		x, _ := capture.Load(name)
		p, _ := capture.Payloads(x.RespBody)
		f.Add(bytes.Join(p, []byte("\n")))
	}
	p, _ := capture.Payloads([]byte(toolStream))
	f.Add(bytes.Join(p, []byte("\n")))
	r, _ := ParseRequest([]byte(toolsReq))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := r.NewStream(translate.Env{})
		var out []byte
		for _, line := range bytes.Split(in, []byte("\n")) {
			out, _ = s.Feed(out, line)
		}
		out = s.End(out)
		if !s.Done() {
			t.Fatal("not done after End")
		}
		checkSDKInvariants(t, out)
	})
}
