package ollamaapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/translate"
	"github.com/unjuno/flm/core/translate/internal/capture"
)

var (
	allCaps = engine.Capabilities{Chat: true, ChatStream: true, Completions: true, Embeddings: true, Tools: true, Vision: true}
	target  = translate.Target{Model: "Qwen/Qwen2.5-1.5B-Instruct", Caps: allCaps}
	// start is when the request "arrived": 250 ms before capture.Env's clock.
	start = time.Date(2026, 12, 2, 15, 4, 39, 750_000_000, time.UTC)
)

// A 1×1 PNG, base64 as Ollama clients send images.
const png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

func load(t testing.TB, name string) *capture.Exchange {
	t.Helper()
	x, err := capture.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

const toolsChat = `{"model":"qwen2.5","stream":false,"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
 "messages":[{"role":"user","content":"Weather in Paris and Rome?"},
  {"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}},{"function":{"index":1,"name":"get_weather","arguments":{"city":"Rome"}}}]},
  {"role":"tool","tool_name":"get_weather","content":"18"},
  {"role":"tool","content":"21"},
  {"role":"user","content":"Thanks","images":["` + png + `"]}]}`

func TestBodiesGolden(t *testing.T) {
	chat := []struct{ name, body string }{
		{"chat", string(load(t, "ollama/api_chat.http").ReqBody)},
		{"chat_stream_default", string(load(t, "ollama/api_chat_stream.http").ReqBody)},
		{"chat_tools_images", toolsChat},
		{"chat_options", `{"model":"m","stream":false,"format":"json","options":{"temperature":0.1,"top_p":0.9,"top_k":20,"min_p":0.05,"num_predict":-1,"stop":"END","seed":7,"frequency_penalty":0.5,"presence_penalty":0.25,"num_ctx":8192,"num_gpu":99,"mirostat":2},"keep_alive":"5m","think":true,"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}]}`},
		{"chat_schema", `{"model":"m","stream":false,"format":{"type":"object","properties":{"a":{"type":"string"}}},"options":{"stop":["x","y"]},"messages":[{"role":"user","content":"u"}]}`},
	}
	for _, c := range chat {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseChat([]byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.ChatBody(target)
			if err != nil {
				t.Fatal(err)
			}
			capture.Golden(t, c.name+".json", append(got, '\n'))
		})
	}
	gen := []struct{ name, body, path string }{
		{"generate", string(load(t, "ollama/api_generate.http").ReqBody), translate.ChatPath},
		{"generate_raw", string(load(t, "ollama/api_generate_raw.http").ReqBody), translate.CompletionsPath},
		{"generate_stream_system_image", `{"model":"m","prompt":"Describe","system":"Be short.","images":["` + png + `"],"format":"json"}`, translate.ChatPath},
		{"generate_raw_stream", `{"model":"m","prompt":"[INST]hi[/INST]","raw":true,"system":"ignored in raw mode","options":{"num_predict":4}}`, translate.CompletionsPath},
	}
	for _, c := range gen {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseGenerate([]byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if r.Path() != c.path {
				t.Errorf("path %s, want %s", r.Path(), c.path)
			}
			got, err := r.Body(target)
			if err != nil {
				t.Fatal(err)
			}
			capture.Golden(t, c.name+".json", append(got, '\n'))
		})
	}
	emb := []struct {
		name, body string
		legacy     bool
	}{
		{"embed", string(load(t, "ollama/api_embed.http").ReqBody), false},
		{"embed_batch", string(load(t, "ollama/api_embed_batch.http").ReqBody), false},
		{"embed_dimensions", `{"model":"e","input":"x","dimensions":64,"truncate":false,"keep_alive":0}`, false},
		{"embeddings_legacy", string(load(t, "ollama/api_embeddings_legacy.http").ReqBody), true},
	}
	for _, c := range emb {
		t.Run(c.name, func(t *testing.T) {
			parse := ParseEmbed
			if c.legacy {
				parse = ParseEmbeddings
			}
			r, err := parse([]byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.EmbeddingsBody(target)
			if err != nil {
				t.Fatal(err)
			}
			capture.Golden(t, c.name+".json", append(got, '\n'))
		})
	}
}

func TestParsedRequestFlags(t *testing.T) {
	r, err := ParseChat(load(t, "ollama/api_chat_stream.http").ReqBody)
	if err != nil || !r.Stream || r.Model != "tiny" {
		t.Fatalf("stream must default to true: %+v %v", r, err)
	}
	r, _ = ParseChat([]byte(`{"model":"m","stream":false,"messages":[{"role":"user","content":"x"}],"think":false}`))
	if r.Stream || !r.NoThinking {
		t.Fatalf("%+v", r)
	}
	r, _ = ParseChat([]byte(`{"model":"tiny"}`))
	if !r.LoadOnly || r.Unload {
		t.Fatalf("no messages is a load call: %+v", r)
	}
	g, _ := ParseGenerate(load(t, "ollama/api_generate_unload_keep_alive_0.http").ReqBody)
	if !g.LoadOnly || !g.Unload {
		t.Fatalf("keep_alive 0 without prompt is an unload call: %+v", g)
	}
	if e := UnloadUnsupported(); e.Status != 400 {
		t.Errorf("unload: %+v", e)
	}
	e, _ := ParseEmbed([]byte(`{"model":"e","input":[]}`))
	if !e.LoadOnly || string(e.LoadResponse()) != `{"model":"e","embeddings":[]}` {
		t.Fatalf("empty input: %+v %s", e, e.LoadResponse())
	}
	l, _ := ParseEmbeddings([]byte(`{"model":"e","prompt":""}`))
	if !l.LoadOnly || string(l.LoadResponse()) != `{"embedding":[]}` {
		t.Fatalf("legacy empty prompt: %+v", l)
	}
}

func TestLoadResponsesMatchOllama(t *testing.T) {
	env := capture.Env()
	r, _ := ParseChat([]byte(`{"model":"tiny"}`))
	got := r.LoadResponse(env)
	want := `{"model":"tiny","created_at":"2026-12-02T15:04:40.001Z","message":{"role":"assistant","content":""},"done_reason":"load","done":true}`
	if string(got) != want {
		t.Errorf("chat load: %s", got)
	}
	g, _ := ParseGenerate([]byte(`{"model":"tiny"}`))
	unload := load(t, "ollama/api_generate_unload_keep_alive_0.http").RespBody
	if d := capture.Diff(g.LoadResponse(env), unload, capture.Equal); len(d) > 0 {
		t.Errorf("generate load vs Ollama: %v", d)
	}
}

func TestParseRefusesBadRequests(t *testing.T) {
	type parser func([]byte) error
	chat := func(b []byte) error { _, err := ParseChat(b); return err }
	gen := func(b []byte) error { _, err := ParseGenerate(b); return err }
	emb := func(b []byte) error { _, err := ParseEmbed(b); return err }
	show := func(b []byte) error { _, err := ParseShow(b); return err }
	cases := []struct {
		name  string
		parse parser
		body  string
		param string
		code  string
	}{
		{"chat malformed", chat, string(load(t, "ollama/error_api_chat_malformed_json.http").ReqBody), "", "invalid_request"},
		{"chat no model", chat, string(load(t, "ollama/error_api_chat_missing_model.http").ReqBody), "model", "invalid_request"},
		{"chat bad role", chat, `{"model":"m","messages":[{"role":"function","content":"x"}]}`, "messages[0].role", "invalid_request"},
		{"chat content array", chat, `{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}`, "messages.content", "invalid_request"},
		{"orphan tool message", chat, `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"tool","content":"18"}]}`, "messages[1]", "invalid_request"},
		{"tool args string", chat, `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}]}`, "messages[0].tool_calls[0].function.arguments", "invalid_request"},
		{"tool without name", chat, `{"model":"m","tools":[{"type":"function","function":{}}],"messages":[{"role":"user","content":"x"}]}`, "tools[0].function.name", "invalid_request"},
		{"bad image", chat, `{"model":"m","messages":[{"role":"user","content":"x","images":["PGh0bWw+PC9odG1sPg=="]}]}`, "messages[0].images[0]", "invalid_request"},
		{"image not base64", chat, `{"model":"m","messages":[{"role":"user","content":"x","images":["%%%%"]}]}`, "messages[0].images[0]", "invalid_request"},
		{"assistant image", chat, `{"model":"m","messages":[{"role":"assistant","content":"x","images":["` + png + `"]}]}`, "messages[0].images", "unsupported_parameter"},
		{"option type", chat, `{"model":"m","options":{"temperature":"hot"},"messages":[{"role":"user","content":"x"}]}`, "options.temperature", "invalid_request"},
		{"stop type", chat, `{"model":"m","options":{"stop":5},"messages":[{"role":"user","content":"x"}]}`, "options.stop", "invalid_request"},
		{"format type", chat, `{"model":"m","format":"xml","messages":[{"role":"user","content":"x"}]}`, "format", "invalid_request"},
		{"generate malformed", gen, string(load(t, "ollama/error_api_generate_malformed_json.http").ReqBody), "", "invalid_request"},
		{"generate template", gen, `{"model":"m","prompt":"x","template":"{{ .Prompt }}"}`, "template", "unsupported_parameter"},
		{"generate context", gen, `{"model":"m","prompt":"x","context":[1,2,3]}`, "context", "unsupported_parameter"},
		{"generate suffix", gen, `{"model":"m","prompt":"def f(","suffix":"return x"}`, "suffix", "unsupported_parameter"},
		{"generate raw format", gen, `{"model":"m","prompt":"x","raw":true,"format":"json"}`, "raw", "unsupported_parameter"},
		{"embed no model", emb, `{"input":"x"}`, "model", "invalid_request"},
		{"embed input number", emb, `{"model":"e","input":5}`, "input", "invalid_request"},
		{"embed input mixed", emb, `{"model":"e","input":["a",1]}`, "input", "invalid_request"},
		{"show no model", show, `{}`, "model", "invalid_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.parse([]byte(c.body))
			var te *translate.Error
			if !errors.As(err, &te) {
				t.Fatalf("err = %v, want *translate.Error", err)
			}
			if te.Status != 400 || te.Param != c.param || te.Code != c.code {
				t.Fatalf("got %d %s %q (%s), want 400 %s %q", te.Status, te.Code, te.Param, te.Message, c.code, c.param)
			}
		})
	}
	// Ollama's own wording for a missing model, which clients show as is.
	_, err := ParseChat(load(t, "ollama/error_api_chat_missing_model.http").ReqBody)
	if got, want := string(ErrorBody(err.Error())), string(load(t, "ollama/error_api_chat_missing_model.http").RespBody); got != want {
		t.Errorf("missing model: %s, Ollama says %s", got, want)
	}
}

func TestBodiesRefuseWhatTheModelLacks(t *testing.T) {
	noTools := translate.Target{Model: "m", Caps: engine.Capabilities{Chat: true, Vision: true}}
	noVision := translate.Target{Model: "m", Caps: engine.Capabilities{Chat: true, Tools: true}}
	r, _ := ParseChat([]byte(toolsChat))
	for _, tg := range []translate.Target{noTools, noVision} {
		if _, err := r.ChatBody(tg); err == nil || err.(*translate.Error).Code != "unsupported_parameter" {
			t.Errorf("caps %+v: err = %v", tg.Caps, err)
		}
	}
	g, _ := ParseGenerate([]byte(`{"model":"m","prompt":"x","images":["` + png + `"]}`))
	if _, err := g.Body(noVision); err == nil {
		t.Error("image to a model without vision accepted")
	}
}

// allowedMissing are the keys of Ollama's answers FLM cannot know and
// leaves out (as Ollama leaves out zero values): the model's load time and
// /api/generate's token context.
var allowedMissing = []string{`missing key "load_duration"`, `missing key "context"`}

func shapeDiff(got, want []byte, alsoMissing ...string) []string {
	var out []string
	for _, d := range capture.Diff(got, want, capture.Equal) {
		ok := false
		for _, a := range append(alsoMissing, allowedMissing...) {
			ok = ok || strings.HasSuffix(d, a)
		}
		if !ok {
			out = append(out, d)
		}
	}
	return out
}

func TestResponsesGoldenAndNativeShapes(t *testing.T) {
	// A non-streamed answer cannot be split into prompt and generation time
	// unless the engine measured it (llama-server's timings).
	untimed := []string{`missing key "prompt_eval_duration"`, `missing key "eval_duration"`}
	cases := []struct {
		name, kind, req, engine, native string
		alsoMissing                     []string
	}{
		{"chat_llamacpp", "chat", string(load(t, "ollama/api_chat.http").ReqBody), string(load(t, "llamacpp/v1_chat_completions.http").RespBody), "ollama/api_chat.http", nil},
		{"chat_ollama_v1", "chat", string(load(t, "ollama/api_chat.http").ReqBody), string(load(t, "ollama/v1_chat_completions.http").RespBody), "ollama/api_chat.http", untimed},
		{"chat_vllm", "chat", string(load(t, "ollama/api_chat.http").ReqBody), string(load(t, "vllm/v1_chat_completions.http").RespBody), "", nil},
		{"chat_tool_calls", "chat", toolsChat, `{"choices":[{"index":0,"message":{"content":null,"reasoning_content":"need weather","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}`, "", nil},
		{"chat_no_usage", "chat", `{"model":"m","stream":false,"think":false,"messages":[{"role":"user","content":"x"}]}`, `{"choices":[{"index":0,"message":{"content":"y","reasoning":"hidden"},"finish_reason":"stop"}]}`, "", nil},
		{"generate_chat", "generate", string(load(t, "ollama/api_generate.http").ReqBody), string(load(t, "ollama/v1_chat_completions.http").RespBody), "ollama/api_generate.http", untimed},
		{"generate_raw", "generate", string(load(t, "ollama/api_generate_raw.http").ReqBody), string(load(t, "llamacpp/v1_completions.http").RespBody), "ollama/api_generate_raw.http", nil},
		{"embed", "embed", string(load(t, "ollama/api_embed.http").ReqBody), string(load(t, "llamacpp/v1_embeddings.http").RespBody), "ollama/api_embed.http", nil},
		{"embed_batch", "embed", string(load(t, "ollama/api_embed_batch.http").ReqBody), string(load(t, "llamacpp/v1_embeddings_batch.http").RespBody), "ollama/api_embed_batch.http", nil},
		{"embeddings_legacy", "legacy", string(load(t, "ollama/api_embeddings_legacy.http").ReqBody), string(load(t, "llamacpp/v1_embeddings.http").RespBody), "ollama/api_embeddings_legacy.http", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := capture.Env()
			var got []byte
			var err error
			switch c.kind {
			case "chat":
				r, _ := ParseChat([]byte(c.req))
				got, err = r.Response([]byte(c.engine), env, start)
			case "generate":
				r, _ := ParseGenerate([]byte(c.req))
				got, err = r.Response([]byte(c.engine), env, start)
			case "embed":
				r, _ := ParseEmbed([]byte(c.req))
				got, err = r.Response([]byte(c.engine), env, start)
			case "legacy":
				r, _ := ParseEmbeddings([]byte(c.req))
				got, err = r.Response([]byte(c.engine), env, start)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			if c.native != "" {
				if d := shapeDiff(got, load(t, c.native).RespBody, c.alsoMissing...); len(d) > 0 {
					t.Errorf("vs %s:\n%s", c.native, strings.Join(d, "\n"))
				}
			}
			if c.kind == "embed" || c.kind == "legacy" {
				return // the vectors are the engine's, copied as they are; too long for a golden file
			}
			capture.Golden(t, "response_"+c.name+".json", append(got, '\n'))
		})
	}
}

// The engine's vectors reach the client byte for byte: no float
// re-formatting.
func TestEmbedCopiesVectorsExactly(t *testing.T) {
	r, _ := ParseEmbed([]byte(`{"model":"e","input":["a","b"]}`))
	got, err := r.Response([]byte(`{"data":[{"index":1,"embedding":[0.30000000000000004,-1e-7]},{"index":0,"embedding":[1,2.50]}],"usage":{"prompt_tokens":4,"total_tokens":4}}`), capture.Env(), start)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"model":"e","embeddings":[[1,2.50],[0.30000000000000004,-1e-7]],"total_duration":251000000,"prompt_eval_count":4}`; string(got) != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	chat, _ := ParseChat([]byte(toolsChat))
	if _, err := chat.Response([]byte(`{"choices":[{"index":0,"message":{"tool_calls":[{"id":"a","function":{"name":"","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`), capture.Env(), start); err == nil {
		t.Error("a nameless tool call was translated")
	}
	for _, bad := range []string{`{"data":[]}`, `{"data":[{"index":0,"embedding":"AAAA"}]}`, `nope`} {
		if _, err := r.Response([]byte(bad), capture.Env(), start); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func feed(t testing.TB, s translate.Stream, payloads [][]byte) []byte {
	t.Helper()
	var out []byte
	for _, p := range payloads {
		out, _ = s.Feed(out, p)
	}
	return s.End(out)
}

func payloads(t testing.TB, stream string) [][]byte {
	t.Helper()
	p, err := capture.Payloads([]byte(stream))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkNDJSON checks what Ollama clients rely on: every line is a JSON
// object, the last line is the only done:true line (or an error line),
// every other line has model, created_at (RFC 3339) and done:false.
func checkNDJSON(t testing.TB, out []byte, generate bool) [][]byte {
	t.Helper()
	lines, err := capture.NDJSON(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for i, l := range lines {
		var v struct {
			Model     *string
			CreatedAt *string `json:"created_at"`
			Done      *bool
			Error     *string
			Response  *string
			Message   *struct{ Role, Content string }
		}
		if err := json.Unmarshal(l, &v); err != nil {
			t.Fatalf("line %d: %s", i, l)
		}
		last := i == len(lines)-1
		if v.Error != nil {
			if !last {
				t.Fatalf("error line before the end: %s", l)
			}
			continue
		}
		if v.Model == nil || v.CreatedAt == nil || v.Done == nil {
			t.Fatalf("line %d lacks model/created_at/done: %s", i, l)
		}
		if _, err := time.Parse(time.RFC3339Nano, *v.CreatedAt); err != nil {
			t.Fatalf("created_at %q", *v.CreatedAt)
		}
		if *v.Done != last {
			t.Fatalf("line %d: done=%v: %s", i, *v.Done, l)
		}
		if generate && v.Response == nil || !generate && (v.Message == nil || v.Message.Role != "assistant") {
			t.Fatalf("line %d lacks its response/message: %s", i, l)
		}
	}
	return lines
}

func TestStreamsMatchNativeStreams(t *testing.T) {
	cases := []struct {
		name, kind, req, engine, native string
	}{
		{"chat_llamacpp", "chat", string(load(t, "ollama/api_chat_stream.http").ReqBody), string(load(t, "llamacpp/v1_chat_completions_stream_usage.http").RespBody), "ollama/api_chat_stream.http"},
		{"chat_ollama_v1", "chat", string(load(t, "ollama/api_chat_stream.http").ReqBody), string(load(t, "ollama/v1_chat_completions_stream_usage.http").RespBody), "ollama/api_chat_stream.http"},
		{"chat_lmstudio_no_usage", "chat", string(load(t, "ollama/api_chat_stream.http").ReqBody), string(load(t, "lmstudio/v1_chat_completions_stream.http").RespBody), ""},
		{"generate_chat", "generate", string(load(t, "ollama/api_generate_stream.http").ReqBody), string(load(t, "llamacpp/v1_chat_completions_stream_usage.http").RespBody), "ollama/api_generate_stream.http"},
		{"generate_raw", "generate", `{"model":"tiny","prompt":"Once upon a time","raw":true}`, string(load(t, "llamacpp/v1_completions_stream.http").RespBody), "ollama/api_generate_stream.http"},
		{"chat_tools", "chat", toolsChat, "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hmm\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,\"total_tokens\":13}}\n\ndata: [DONE]\n\n", ""},
		{"chat_bad_tool_args", "chat", toolsChat, "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n", ""},
		{"chat_engine_error", "chat", string(load(t, "ollama/api_chat_stream.http").ReqBody), "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"llama: context overflow\"}}\n\n", ""},
		{"chat_cut", "chat", string(load(t, "ollama/api_chat_stream.http").ReqBody), "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s *Stream
			if c.kind == "chat" {
				r, err := ParseChat([]byte(c.req))
				if err != nil {
					t.Fatal(err)
				}
				s = r.NewStream(capture.Env(), start)
			} else {
				r, err := ParseGenerate([]byte(c.req))
				if err != nil {
					t.Fatal(err)
				}
				s = r.NewStream(capture.Env(), start)
			}
			out := feed(t, s, payloads(t, c.engine))
			lines := checkNDJSON(t, out, c.kind == "generate")
			if c.native != "" {
				want, err := capture.NDJSON(load(t, c.native).RespBody)
				if err != nil {
					t.Fatal(err)
				}
				if d := shapeDiff(lines[0], want[0]); len(d) > 0 {
					t.Errorf("first line vs %s:\n%s", c.native, strings.Join(d, "\n"))
				}
				if d := shapeDiff(lines[len(lines)-1], want[len(want)-1]); len(d) > 0 {
					t.Errorf("last line vs %s:\n%s", c.native, strings.Join(d, "\n"))
				}
			}
			capture.Golden(t, "stream_"+c.name+".ndjson", out)
		})
	}
}

func TestCatalog(t *testing.T) {
	ctx := 4096
	catalog := []engine.Model{
		{ID: "flm://ollama/tiny:latest", EngineID: "ollama", EngineKind: engine.Ollama, Name: "tiny:latest", Capabilities: engine.Capabilities{Chat: true, Completions: true}},
		{ID: "flm://llamacpp/tiny-chat", EngineID: "llamacpp", EngineKind: engine.LlamaCPP, Name: "tiny-chat", ContextLength: &ctx, Capabilities: engine.Capabilities{Chat: true, Tools: true}},
		{ID: "flm://vllm/Qwen/Qwen2.5-1.5B-Instruct", EngineID: "vllm", EngineKind: engine.VLLM, Name: "Qwen/Qwen2.5-1.5B-Instruct", Capabilities: engine.Capabilities{Chat: true, Tools: true, Vision: true}},
		{ID: "flm://lmstudio/qwen", EngineID: "lmstudio", Name: "qwen", Capabilities: engine.Capabilities{Embeddings: true}},
		{ID: "flm://lmstudio2/qwen", EngineID: "lmstudio2", Name: "qwen"},
	}
	if Name(catalog[0], catalog) != "tiny:latest" || Name(catalog[2], catalog) != "Qwen/Qwen2.5-1.5B-Instruct" || Name(catalog[3], catalog) != "flm://lmstudio/qwen" {
		t.Fatal("a unique name is listed bare, an ambiguous one as its flm:// id")
	}
	// "tiny" of another engine collides with Ollama's "tiny:latest": FLM
	// routes a bare "tiny" to either (Ollama's implicit tag), so neither is
	// listed bare.
	withAlias := append(slices.Clone(catalog), engine.Model{ID: "flm://llamacpp2/tiny", EngineID: "llamacpp2", Name: "tiny"})
	if Name(withAlias[0], withAlias) != "flm://ollama/tiny:latest" || Name(withAlias[5], withAlias) != "flm://llamacpp2/tiny" {
		t.Fatal("names that differ only by the implicit :latest tag must be listed as ids")
	}
	// A key that sees only one of the two "qwen" still gets the id: the bare
	// name would be ambiguous when routed.
	tags := Tags(catalog[3:4], catalog)
	if !strings.Contains(string(tags), `"name":"flm://lmstudio/qwen"`) {
		t.Errorf("scoped tags %s", tags)
	}
	tags = Tags(catalog, nil)
	if d := capture.Diff(tags, load(t, "ollama/api_tags.http").RespBody, capture.Equal); len(d) > 0 {
		t.Errorf("tags vs Ollama:\n%s", strings.Join(d, "\n"))
	}
	capture.Golden(t, "tags.json", append(tags, '\n'))
	var list struct {
		Models []struct{ Name, Digest string }
	}
	if err := json.Unmarshal(tags, &list); err != nil || len(list.Models) != 5 {
		t.Fatalf("%v %s", err, tags)
	}
	seen := map[string]bool{}
	for _, m := range list.Models {
		if len(m.Digest) != 64 || seen[m.Digest] {
			t.Errorf("digest %q not a unique sha256", m.Digest)
		}
		seen[m.Digest] = true
	}

	show := Show(catalog[1])
	native := load(t, "ollama/api_show.http").RespBody
	var a, b map[string]json.RawMessage
	_ = json.Unmarshal(show, &a)
	_ = json.Unmarshal(native, &b)
	delete(a, "model_info") // the engine's own GGUF keys; FLM knows only the context length
	delete(b, "model_info")
	ga, _ := json.Marshal(a)
	gb, _ := json.Marshal(b)
	if d := capture.Diff(ga, gb, capture.Equal); len(d) > 0 {
		t.Errorf("show vs Ollama:\n%s", strings.Join(d, "\n"))
	}
	capture.Golden(t, "show.json", append(show, '\n'))
	if got := string(Show(catalog[0])); !strings.Contains(got, `"model_info":{}`) {
		t.Errorf("unknown context length: %s", got)
	}
	if d := capture.Diff(Version(APIVersion), load(t, "ollama/api_version.http").RespBody, capture.Equal); len(d) > 0 || string(Version("0.33.0")) != `{"version":"0.33.0"}` {
		t.Errorf("version: %v", d)
	}
}

func TestErrors(t *testing.T) {
	for _, name := range []string{"ollama/error_api_chat_unknown_model.http", "ollama/error_api_show_unknown_model.http"} {
		x := load(t, name)
		if d := capture.Diff(ErrorBody("m"), x.RespBody, capture.Equal); len(d) > 0 {
			t.Errorf("%s: %v", name, d)
		}
	}
	e := ModelNotFound("does-not-exist")
	if e.Status != http.StatusNotFound || string(ErrorBody(e.Message)) != string(load(t, "ollama/error_api_chat_unknown_model.http").RespBody) {
		t.Errorf("not found: %s", ErrorBody(e.Message))
	}
	if got := string(ErrorBody("a \"b\"\n")); got != `{"error":"a \"b\"\n"}` {
		t.Errorf("escaping: %s", got)
	}
}

func BenchmarkChatStream(b *testing.B) {
	r, _ := ParseChat(load(b, "ollama/api_chat_stream.http").ReqBody)
	p := payloads(b, string(load(b, "llamacpp/v1_chat_completions_stream_usage.http").RespBody))
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		s := r.NewStream(translate.Env{}, start)
		out = out[:0]
		for _, pl := range p {
			out, _ = s.Feed(out, pl)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(p)), "ns/chunk")
}

func ExampleTags() {
	models := []engine.Model{
		{ID: "flm://ollama/llama3:latest", Name: "llama3:latest", Capabilities: engine.Capabilities{Chat: true, Tools: true}},
		{ID: "flm://vllm/llama3:latest", Name: "llama3:latest"},
	}
	var v struct{ Models []struct{ Name string } }
	_ = json.Unmarshal(Tags(models, nil), &v)
	for _, m := range v.Models {
		fmt.Println(m.Name)
	}
	// Output:
	// flm://ollama/llama3:latest
	// flm://vllm/llama3:latest
}
