package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/unjuno/flm/core/translate"
	"github.com/unjuno/flm/core/translate/internal/capture"
)

func seedRequests(f *testing.F) {
	for _, name := range []string{"llamacpp/v1_messages.http", "llamacpp/v1_messages_system.http", "llamacpp/v1_messages_stream.http", "llamacpp/v1_messages_missing_max_tokens.http"} {
		x, err := capture.Load(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(x.ReqBody)
	}
	f.Add([]byte(toolsReq))
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://x"}}]}]}`))
}

// Any body: no panic; either a *translate.Error with a 4xx status, or a
// request whose engine body is valid JSON with the engine's model name and
// at least one message.
func FuzzParseRequest(f *testing.F) {
	seedRequests(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRequest(body)
		if err != nil {
			var te *translate.Error
			if !errors.As(err, &te) || te.Status < 400 || te.Status > 499 || te.Message == "" {
				t.Fatalf("error %#v", err)
			}
			return
		}
		out, err := r.ChatBody(translate.Target{Model: "engine-name", Caps: allCaps})
		if err != nil {
			t.Fatalf("all capabilities, still refused: %v", err)
		}
		var c struct {
			Model    string            `json:"model"`
			Messages []json.RawMessage `json:"messages"`
		}
		if err := json.Unmarshal(out, &c); err != nil || c.Model != "engine-name" {
			t.Fatalf("engine body %s: %v", out, err)
		}
		if _, err := r.ChatBody(translate.Target{Model: "m", Caps: textOnly}); err == nil && (r.UsesTools || r.UsesImages) {
			t.Fatal("tools or images accepted for a text-only model")
		}
	})
}

// Any engine answer: a valid Anthropic message or a 502.
func FuzzMessage(f *testing.F) {
	for _, name := range []string{"llamacpp/v1_chat_completions.http", "ollama/v1_chat_completions.http", "vllm/v1_chat_completions.http"} {
		x, _ := capture.Load(name)
		f.Add(x.RespBody)
	}
	f.Add([]byte(`{"choices":[{"index":0,"message":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{\"x\":1}"}}]},"finish_reason":"tool_calls"}]}`))
	r, _ := ParseRequest([]byte(toolsReq))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := r.Message(body, translate.Env{})
		if err != nil {
			var te *translate.Error
			if !errors.As(err, &te) || te.Status != 502 {
				t.Fatalf("error %#v", err)
			}
			return
		}
		var m struct {
			Type    string
			Content []struct{ Type string }
			Usage   *struct {
				InputTokens  *int64 `json:"input_tokens"`
				OutputTokens *int64 `json:"output_tokens"`
			}
			StopReason *string `json:"stop_reason"`
		}
		if err := json.Unmarshal(out, &m); err != nil || m.Type != "message" || m.Content == nil || m.Usage == nil || m.Usage.InputTokens == nil || m.StopReason == nil {
			t.Fatalf("message %s: %v", out, err)
		}
	})
}

// Any sequence of engine payloads (one per line): the output is always a
// well-formed Anthropic stream that the SDKs accept, ending in message_stop
// or error.
func FuzzStream(f *testing.F) {
	for _, name := range []string{"llamacpp/v1_chat_completions_stream_usage.http", "vllm/v1_chat_completions_stream.http"} {
		x, _ := capture.Load(name)
		p, _ := capture.Payloads(x.RespBody)
		f.Add(bytes.Join(p, []byte("\n")))
	}
	p, _ := capture.Payloads([]byte(toolStream))
	f.Add(bytes.Join(p, []byte("\n")))
	f.Add([]byte("{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"x\",\"content\":\"y\"}}]}\n{\"error\":\"boom\"}"))
	r, _ := ParseRequest([]byte(`{"model":"m","stream":true,"thinking":{"type":"enabled"},"stop_sequences":["x"],"messages":[{"role":"user","content":"hi"}]}`))
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
