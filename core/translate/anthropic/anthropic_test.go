package anthropic

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/translate"
	"github.com/unjuno/flm/core/translate/internal/capture"
)

var (
	allCaps  = engine.Capabilities{Chat: true, ChatStream: true, Tools: true, Vision: true}
	textOnly = engine.Capabilities{Chat: true, ChatStream: true}
	target   = translate.Target{Model: "/models/tiny-chat.gguf", Caps: allCaps}
)

func load(t testing.TB, name string) *capture.Exchange {
	t.Helper()
	x, err := capture.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func parse(t testing.TB, body string) *Request {
	t.Helper()
	r, err := ParseRequest([]byte(body))
	if err != nil {
		t.Fatalf("ParseRequest(%s): %v", body, err)
	}
	return r
}

const toolsReq = `{"model":"flm://vllm/qwen","max_tokens":64,"stream":true,
 "system":[{"type":"text","text":"You help."},{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
 "tools":[{"name":"get_weather","description":"Weather now","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}],
 "tool_choice":{"type":"any","disable_parallel_tool_use":true},
 "metadata":{"user_id":"u1"},
 "messages":[
  {"role":"user","content":"Weather in Paris?"},
  {"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"x"},{"type":"text","text":"Let me check."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},
  {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"18°C"}]},{"type":"text","text":"And tomorrow?"}]}
 ]}`

// Request translation, pinned by golden files: what each engine receives.
func TestChatBodyGolden(t *testing.T) {
	cases := []struct{ name, body string }{
		{"plain", string(load(t, "llamacpp/v1_messages.http").ReqBody)},
		{"system_stop", string(load(t, "llamacpp/v1_messages_system.http").ReqBody)},
		{"missing_max_tokens", string(load(t, "llamacpp/v1_messages_missing_max_tokens.http").ReqBody)},
		{"stream", string(load(t, "llamacpp/v1_messages_stream.http").ReqBody)},
		{"tools_history", toolsReq},
		{"sampling", `{"model":"m","max_tokens":5,"temperature":0.2,"top_p":0.9,"top_k":40,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":[{"type":"text","text":"c"},{"type":"text","text":"d"}]}]}`},
		{"image", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},{"type":"image","source":{"type":"url","url":"https://example.com/a.jpg"}},{"type":"text","text":"What is this?"}]}]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := parse(t, c.body)
			got, err := r.ChatBody(target)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			capture.Golden(t, "chat_"+c.name+".json", append(got, '\n'))
		})
	}
}

func TestParseRequestKeepsWhatClientsRelyOn(t *testing.T) {
	r := parse(t, toolsReq)
	if r.Model != "flm://vllm/qwen" || !r.Stream || !r.UsesTools || r.UsesImages {
		t.Fatalf("parsed %+v", r)
	}
	c, err := r.ChatRequest(target)
	if err != nil {
		t.Fatal(err)
	}
	roles := []string{}
	for _, m := range c.Messages {
		roles = append(roles, m.Role)
	}
	// The tool result must follow the assistant's call directly, before the
	// rest of the user's turn, or engines reject the conversation.
	if want := []string{"system", "user", "assistant", "tool", "user"}; !slices.Equal(roles, want) {
		t.Fatalf("roles %v, want %v", roles, want)
	}
	if c.Model != target.Model {
		t.Errorf("engine model %q, want the engine's own name", c.Model)
	}
	if c.StreamOptions == nil || !c.StreamOptions.IncludeUsage {
		t.Error("a stream must ask the engine for usage")
	}
	if c.Messages[2].ToolCalls[0].Function.Arguments != `{"city":"Paris"}` || c.Messages[3].ToolCallID != "toolu_1" {
		t.Errorf("tool history not carried: %+v", c.Messages[2:4])
	}
}

func TestParseRequestRefusesBadRequests(t *testing.T) {
	cases := []struct {
		name, body, param string
		status            int
	}{
		{"empty", ``, "", 400},
		{"not json", `{"model":`, "", 400},
		{"array", `[1]`, "", 400},
		{"invalid utf8", "{\"model\":\"\xff\",\"messages\":[]}", "", 400},
		{"no model", `{"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, "model", 400},
		{"model number", `{"model":5,"messages":[{"role":"user","content":"hi"}]}`, "model", 400},
		{"zero max_tokens", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}`, "max_tokens", 400},
		{"max_tokens string", `{"model":"m","max_tokens":"5","messages":[{"role":"user","content":"hi"}]}`, "max_tokens", 400},
		{"no messages", `{"model":"m","max_tokens":5}`, "messages", 400},
		{"system role", `{"model":"m","messages":[{"role":"system","content":"hi"}]}`, "messages[0].role", 400},
		{"content number", `{"model":"m","messages":[{"role":"user","content":5}]}`, "messages[0].content", 400},
		{"content null", `{"model":"m","messages":[{"role":"user","content":null}]}`, "messages[0].content", 400},
		{"stream string", `{"model":"m","stream":"yes","messages":[{"role":"user","content":"hi"}]}`, "stream", 400},
		{"document", `{"model":"m","messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","data":"x"}}]}]}`, "messages[0].content[0]", 400},
		{"block without type", `{"model":"m","messages":[{"role":"user","content":[{"text":"x"}]}]}`, "messages[0].content[0].type", 400},
		{"server tool", `{"model":"m","tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"hi"}]}`, "tools[0].type", 400},
		{"tool without schema", `{"model":"m","tools":[{"name":"f"}],"messages":[{"role":"user","content":"hi"}]}`, "tools[0].input_schema", 400},
		{"bad tool_choice", `{"model":"m","tool_choice":{"type":"sometimes"},"messages":[{"role":"user","content":"hi"}]}`, "tool_choice.type", 400},
		{"tool_use input string", `{"model":"m","messages":[{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"f","input":"x"}]}]}`, "messages[0].content[0].input", 400},
		{"tool_result without id", `{"model":"m","messages":[{"role":"user","content":[{"type":"tool_result","content":"x"}]}]}`, "messages[0].content[0].tool_use_id", 400},
		{"image in tool result", `{"model":"m","messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"x"}}]}]}]}`, "messages[0].content[0].content[0]", 400},
		{"image bad media type", `{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"text/html","data":"x"}}]}]}`, "messages[0].content[0].source.media_type", 400},
		{"image file source", `{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}`, "messages[0].content[0].source.type", 400},
		{"image javascript url", `{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"javascript:alert(1)"}}]}]}`, "messages[0].content[0].source.url", 400},
		{"mcp servers", `{"model":"m","mcp_servers":[{"type":"url","url":"https://x","name":"x"}],"messages":[{"role":"user","content":"hi"}]}`, "mcp_servers", 400},
		{"empty stop sequence", `{"model":"m","stop_sequences":[""],"messages":[{"role":"user","content":"hi"}]}`, "stop_sequences[0]", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseRequest([]byte(c.body))
			var te *translate.Error
			if !errors.As(err, &te) {
				t.Fatalf("err = %v, want a *translate.Error", err)
			}
			if te.Status != c.status || te.Param != c.param {
				t.Fatalf("status %d param %q (%s), want %d %q", te.Status, te.Param, te.Message, c.status, c.param)
			}
			if !flmerr.Is(err, flmerr.InvalidArgument) {
				t.Errorf("flmerr code %s, want INVALID_ARGUMENT", flmerr.CodeOf(err))
			}
		})
	}
}

// What the model cannot do is refused, never silently dropped.
func TestChatBodyRefusesWhatTheModelLacks(t *testing.T) {
	cases := []struct {
		name, body string
		caps       engine.Capabilities
	}{
		{"tools", `{"model":"m","tools":[{"name":"f","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"hi"}]}`, textOnly},
		{"tool history", `{"model":"m","messages":[{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":"x"}]}]}`, textOnly},
		{"image", `{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://x/a.png"}}]}]}`, engine.Capabilities{Chat: true, Tools: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := parse(t, c.body)
			_, err := r.ChatBody(translate.Target{Model: "m", Caps: c.caps})
			var te *translate.Error
			if !errors.As(err, &te) || te.Status != http.StatusBadRequest || te.Code != "unsupported_parameter" {
				t.Fatalf("err = %#v, want 400 unsupported_parameter", err)
			}
			body := ErrorBody(te.Status, te.Message, "req_1")
			if !strings.Contains(string(body), `"type":"invalid_request_error"`) {
				t.Errorf("error body %s", body)
			}
		})
	}
}

func TestMessageGolden(t *testing.T) {
	plain := string(load(t, "llamacpp/v1_messages.http").ReqBody)
	withStop := `{"model":"qwen","max_tokens":16,"stop_sequences":["END"],"messages":[{"role":"user","content":"hi"}]}`
	cases := []struct{ name, req, engine string }{
		{"llamacpp_length", plain, string(load(t, "llamacpp/v1_chat_completions.http").RespBody)},
		{"ollama_length", plain, string(load(t, "ollama/v1_chat_completions.http").RespBody)},
		{"vllm_stop", plain, string(load(t, "vllm/v1_chat_completions.http").RespBody)},
		{"lmstudio", plain, string(load(t, "lmstudio/v1_chat_completions.http").RespBody)},
		{"stop_sequence", withStop, `{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"a b"},"finish_reason":"stop","stop_reason":"END"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`},
		{"stop_token_not_sequence", withStop, `{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"a b"},"finish_reason":"stop","stop_reason":151645}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`},
		{"tool_calls", toolsReq, `{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_9","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},{"id":"","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":30,"completion_tokens":12,"total_tokens":42}}`},
		{"tool_calls_finish_stop", toolsReq, `{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"Checking.","tool_calls":[{"id":"call_9","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},"finish_reason":"stop"}]}`},
		{"thinking", `{"model":"m","max_tokens":99,"thinking":{"type":"enabled","budget_tokens":50},"messages":[{"role":"user","content":"hi"}]}`, `{"choices":[{"index":0,"message":{"content":"4","reasoning_content":"2+2"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_tokens_details":{"cached_tokens":2}}}`},
		{"thinking_not_asked", plain, `{"choices":[{"index":0,"message":{"content":"4","reasoning":"2+2"},"finish_reason":"content_filter"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`},
		{"no_usage", plain, `{"choices":[{"index":0,"message":{"content":""},"finish_reason":"stop"}]}`},
		{"estimated_usage_ignored", plain, `{"choices":[{"index":0,"message":{"content":"x"},"finish_reason":"stop"}],"usage":{"prompt_tokens":0,"completion_tokens":3,"total_tokens":3,"flm_estimated":true}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := parse(t, c.req)
			got, err := r.Message([]byte(c.engine), capture.Env())
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			capture.Golden(t, "message_"+c.name+".json", append(got, '\n'))
		})
	}
}

func TestMessageRefusesUnusableEngineAnswers(t *testing.T) {
	r := parse(t, toolsReq)
	for _, body := range []string{
		`not json`,
		`{"choices":[]}`,
		`{"choices":[{"index":0,"message":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"[1,2]"}}]},"finish_reason":"tool_calls"}]}`,
		`{"choices":[{"index":0,"message":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{\"city\":"}}]},"finish_reason":"tool_calls"}]}`,
		`{"choices":[{"index":0,"message":{"tool_calls":[{"id":"a","function":{"name":"","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`,
	} {
		_, err := r.Message([]byte(body), capture.Env())
		var te *translate.Error
		if !errors.As(err, &te) || te.Status != http.StatusBadGateway {
			t.Errorf("%s: err = %v, want 502", body, err)
		}
	}
}

// The translated answer has the shape llama-server and Ollama give when
// they answer /v1/messages themselves.
func TestMessageMatchesNativeShapes(t *testing.T) {
	for _, c := range []struct {
		engine, native string
		mode           capture.Mode
	}{
		{"llamacpp/v1_chat_completions.http", "llamacpp/v1_messages.http", capture.Equal},
		{"ollama/v1_chat_completions.http", "ollama/v1_messages.http", capture.Superset}, // Ollama leaves out stop_sequence
	} {
		x := load(t, c.native)
		r := parse(t, string(x.ReqBody))
		got, err := r.Message(load(t, c.engine).RespBody, translate.Env{})
		if err != nil {
			t.Fatal(err)
		}
		if d := capture.Diff(got, x.RespBody, c.mode); len(d) > 0 {
			t.Errorf("%s vs %s:\n%s", c.engine, c.native, strings.Join(d, "\n"))
		}
		if id := string(got[7:11]); id != "msg_" {
			t.Errorf("id prefix %q", id)
		}
	}
}

func feed(t testing.TB, s translate.Stream, payloads [][]byte, end bool) []byte {
	t.Helper()
	var out []byte
	for _, p := range payloads {
		var err error
		if out, err = s.Feed(out, p); err != nil {
			t.Logf("feed: %v", err)
		}
	}
	if end {
		out = s.End(out)
	}
	return out
}

func enginePayloads(t testing.TB, name string) [][]byte {
	t.Helper()
	p, err := capture.Payloads(load(t, name).RespBody)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// collapse turns an event-name list into its shape: runs of the same event
// count once.
func collapse(evs []capture.Event) []string {
	var out []string
	for _, e := range evs {
		if len(out) == 0 || out[len(out)-1] != e.Name {
			out = append(out, e.Name)
		}
	}
	return out
}

// The translated stream of llama-server's Chat Completions stream has the
// event sequence and event shapes of llama-server's and Ollama's own
// /v1/messages streams.
func TestStreamMatchesNativeStreams(t *testing.T) {
	for _, src := range []string{"llamacpp/v1_chat_completions_stream_usage.http", "llamacpp/v1_chat_completions_stream.http", "ollama/v1_chat_completions_stream_usage.http"} {
		r := parse(t, string(load(t, "llamacpp/v1_messages_stream.http").ReqBody))
		out := feed(t, r.NewStream(translate.Env{}), enginePayloads(t, src), true)
		got, err := capture.SSE(out)
		if err != nil {
			t.Fatal(err)
		}
		checkSDKInvariants(t, out)
		for _, native := range []string{"llamacpp/v1_messages_stream.http", "ollama/v1_messages_stream.http"} {
			want, err := capture.SSE(load(t, native).RespBody)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := collapse(got), collapse(want); !slices.Equal(g, w) {
				t.Errorf("%s: events %v, %s has %v", src, g, native, w)
			}
			first := map[string][]byte{}
			for _, e := range want {
				if _, ok := first[e.Name]; !ok {
					first[e.Name] = e.Data
				}
			}
			for _, e := range got {
				if d := capture.Diff(e.Data, first[e.Name], capture.Superset); len(d) > 0 {
					t.Errorf("%s %s vs %s:\n%s", src, e.Name, native, strings.Join(d, "\n"))
				}
				if !strings.Contains(string(e.Data), `"type":"`+e.Name+`"`) {
					t.Errorf("event %s carries another type: %s", e.Name, e.Data)
				}
			}
		}
	}
}

const toolStream = `data: {"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":"Let me "}}]}

data: {"id":"c1","choices":[{"index":0,"delta":{"content":"check."}}]}

data: {"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}

data: {"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}

data: {"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":" \"Paris\"}"}}]}}]}

data: {"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]}}]}

data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

data: {"id":"c1","choices":[],"usage":{"prompt_tokens":40,"completion_tokens":20,"total_tokens":60,"prompt_tokens_details":{"cached_tokens":32}}}

data: [DONE]

`

func TestStreamGolden(t *testing.T) {
	plain := string(load(t, "llamacpp/v1_messages_stream.http").ReqBody)
	thinking := `{"model":"m","stream":true,"thinking":{"type":"enabled","budget_tokens":9},"messages":[{"role":"user","content":"hi"}]}`
	stop := `{"model":"m","stream":true,"stop_sequences":["END"],"messages":[{"role":"user","content":"hi"}]}`
	cases := []struct {
		name, req, stream string
		end               bool
	}{
		{"llamacpp_usage", plain, string(load(t, "llamacpp/v1_chat_completions_stream_usage.http").RespBody), true},
		{"vllm", plain, string(load(t, "vllm/v1_chat_completions_stream.http").RespBody), true},
		{"lmstudio_no_usage", plain, string(load(t, "lmstudio/v1_chat_completions_stream.http").RespBody), true},
		{"tools", toolsReq, toolStream, true},
		{"thinking", thinking, "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"2+2\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"4\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n", true},
		{"stop_sequence", stop, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\",\"stop_reason\":\"END\"}]}\n\ndata: [DONE]\n\n", true},
		{"engine_error_event", plain, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"llama: context overflow\",\"code\":\"stream_error\"}}\n\ndata: [DONE]\n\n", true},
		{"cut_before_finish", plain, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n", true},
		{"finished_without_done", plain, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"length\"}]}\n\n", true},
		{"empty_answer", plain, "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n", true},
		{"malformed_chunk", plain, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[\n\n", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := parse(t, c.req)
			p, err := capture.Payloads([]byte(c.stream))
			if err != nil {
				t.Fatal(err)
			}
			s := r.NewStream(capture.Env())
			out := feed(t, s, p, c.end)
			if !s.Done() {
				t.Error("stream not done after End")
			}
			if more := s.End(nil); len(more) > 0 {
				t.Errorf("End after the end wrote %s", more)
			}
			checkSDKInvariants(t, out)
			capture.Golden(t, "stream_"+c.name+".sse", out)
		})
	}
}

// A tool call the client could not run (no name) or that the stream cannot
// carry (arguments going back to an earlier call) ends the stream with an
// error instead of a tool_use block the SDKs would mis-assemble.
func TestStreamRefusesUntranslatableToolCalls(t *testing.T) {
	s := parse(t, toolsReq).NewStream(capture.Env())
	out, _ := s.Feed(nil, []byte(`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"[1,"}}]},"finish_reason":"tool_calls"}]}`))
	out, _ = s.Feed(out, []byte(`[DONE]`))
	if !strings.Contains(string(out), "event: error") || strings.Contains(string(out), "message_stop") {
		t.Fatalf("arguments that are no object completed the message: %s", out)
	}
	checkSDKInvariants(t, out)
	for _, stream := range []string{
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"arguments":"{}"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{"}},{"index":1,"id":"b","function":{"name":"g","arguments":"{}"}},{"index":0,"function":{"arguments":"}"}}]}}]}`,
	} {
		s := parse(t, toolsReq).NewStream(capture.Env())
		out, err := s.Feed(nil, []byte(stream))
		if err == nil || !s.Done() {
			t.Fatalf("%s: accepted", stream)
		}
		checkSDKInvariants(t, out)
		if !strings.Contains(string(out), "event: error") {
			t.Fatalf("no error event: %s", out)
		}
	}
}

func TestStreamFail(t *testing.T) {
	r := parse(t, `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	s := r.NewStream(capture.Env())
	out, _ := s.Feed(nil, []byte(`{"choices":[{"index":0,"delta":{"content":"a"}}]}`))
	out = s.Fail(out, http.StatusServiceUnavailable, "the engine's stream broke: connection reset")
	evs, err := capture.SSE(out)
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if last.Name != "error" || string(last.Data) != `{"type":"error","error":{"type":"overloaded_error","message":"the engine's stream broke: connection reset"}}` {
		t.Fatalf("last event %s %s", last.Name, last.Data)
	}
	if out2, _ := s.Feed(nil, []byte(`{"choices":[{"index":0,"delta":{"content":"b"}}]}`)); len(out2) > 0 {
		t.Errorf("fed after failure: %s", out2)
	}
}

// checkSDKInvariants replays a translated stream the way the official SDKs
// accumulate it and fails on anything they would reject: events before
// message_start, deltas for blocks not started, blocks not stopped,
// message_delta missing usage, tool input that is not an object, anything
// after message_stop or error.
func checkSDKInvariants(t testing.TB, out []byte) {
	t.Helper()
	evs, err := capture.SSE(out)
	if err != nil {
		t.Fatalf("not an SSE stream: %v\n%s", err, out)
	}
	if len(evs) == 0 {
		t.Fatal("empty stream")
	}
	type block struct {
		typ     string
		json    strings.Builder
		stopped bool
	}
	var blocks []*block
	started, ended := false, false
	for i, e := range evs {
		var ev struct {
			Type         string          `json:"type"`
			Index        *int            `json:"index"`
			Message      json.RawMessage `json:"message"`
			ContentBlock *struct {
				Type string `json:"type"`
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"content_block"`
			Delta *struct {
				Type        string  `json:"type"`
				PartialJSON *string `json:"partial_json"`
				StopReason  *string `json:"stop_reason"`
			} `json:"delta"`
			Usage *struct {
				OutputTokens *int64 `json:"output_tokens"`
			} `json:"usage"`
			Error *struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			t.Fatalf("event %d (%s) is not JSON: %s", i, e.Name, e.Data)
		}
		if ev.Type != e.Name {
			t.Fatalf("event %d: name %s, type %s", i, e.Name, ev.Type)
		}
		if ended {
			t.Fatalf("event %s after the end", e.Name)
		}
		switch e.Name {
		case "error":
			if ev.Error == nil || ev.Error.Type == "" || ev.Error.Message == "" {
				t.Fatalf("error event without type/message: %s", e.Data)
			}
			ended = true
			continue
		case "message_start":
			if started {
				t.Fatal("second message_start")
			}
			var m struct {
				ID    string `json:"id"`
				Usage *struct {
					InputTokens  *int64 `json:"input_tokens"`
					OutputTokens *int64 `json:"output_tokens"`
				} `json:"usage"`
				Content []any `json:"content"`
			}
			if json.Unmarshal(ev.Message, &m) != nil || !strings.HasPrefix(m.ID, "msg_") || m.Usage == nil || m.Usage.InputTokens == nil || m.Usage.OutputTokens == nil || m.Content == nil {
				t.Fatalf("message_start lacks id/usage/content: %s", e.Data)
			}
			started = true
			continue
		}
		if !started {
			t.Fatalf("%s before message_start", e.Name)
		}
		switch e.Name {
		case "content_block_start":
			if ev.Index == nil || *ev.Index != len(blocks) || ev.ContentBlock == nil {
				t.Fatalf("content_block_start index %v, want %d: %s", ev.Index, len(blocks), e.Data)
			}
			for _, b := range blocks {
				if !b.stopped {
					t.Fatal("a block starts while another is open")
				}
			}
			if ev.ContentBlock.Type == "tool_use" && (ev.ContentBlock.ID == "" || ev.ContentBlock.Name == "") {
				t.Fatalf("tool_use without id/name: %s", e.Data)
			}
			blocks = append(blocks, &block{typ: ev.ContentBlock.Type})
		case "content_block_delta":
			if ev.Index == nil || *ev.Index >= len(blocks) || blocks[*ev.Index].stopped {
				t.Fatalf("delta for a block not open: %s", e.Data)
			}
			b := blocks[*ev.Index]
			want := map[string]string{"text": "text_delta", "tool_use": "input_json_delta", "thinking": "thinking_delta"}[b.typ]
			if ev.Delta == nil || ev.Delta.Type != want {
				t.Fatalf("delta type for a %s block: %s", b.typ, e.Data)
			}
			if ev.Delta.PartialJSON != nil {
				b.json.WriteString(*ev.Delta.PartialJSON)
			}
		case "content_block_stop":
			if ev.Index == nil || *ev.Index >= len(blocks) || blocks[*ev.Index].stopped {
				t.Fatalf("stop for a block not open: %s", e.Data)
			}
			blocks[*ev.Index].stopped = true
		case "message_delta":
			if ev.Delta == nil || ev.Delta.StopReason == nil || ev.Usage == nil || ev.Usage.OutputTokens == nil {
				t.Fatalf("message_delta without stop_reason/usage: %s", e.Data)
			}
			for _, b := range blocks {
				if !b.stopped {
					t.Fatal("message_delta while a block is open")
				}
			}
			if evs[len(evs)-1].Name != "message_stop" || i != len(evs)-2 {
				t.Fatal("message_delta must be followed by message_stop, last")
			}
		case "message_stop":
			ended = true
			// A completed message's tool inputs are whole objects (a stream
			// ending in an error event may have cut one).
			for _, b := range blocks {
				if b.typ == "tool_use" && b.json.Len() > 0 {
					var obj map[string]any
					if err := json.Unmarshal([]byte(b.json.String()), &obj); err != nil {
						t.Fatalf("tool input %q is not an object", b.json.String())
					}
				}
			}
		default:
			t.Fatalf("unknown event %s", e.Name)
		}
	}
	if !ended {
		t.Fatal("stream has neither message_stop nor error")
	}
}

func TestErrorBody(t *testing.T) {
	for status, typ := range map[int]string{400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 501: "api_error", 502: "api_error", 503: "overloaded_error", 504: "api_error"} {
		body := ErrorBody(status, `model "x" is not "allowed"`+"\n", "")
		var v struct {
			Type  string `json:"type"`
			Error struct{ Type, Message string }
		}
		if err := json.Unmarshal(body, &v); err != nil || v.Type != "error" || v.Error.Type != typ || v.Error.Message != `model "x" is not "allowed"`+"\n" {
			t.Errorf("%d: %s", status, body)
		}
	}
	if got := string(ErrorBody(404, "m", "req_9")); got != `{"type":"error","error":{"type":"not_found_error","message":"m"},"request_id":"req_9"}` {
		t.Errorf("with request id: %s", got)
	}
	e := CountTokensUnsupported()
	if e.Status != 404 || !strings.Contains(string(ErrorBody(e.Status, e.Message, "")), "not_found_error") {
		t.Errorf("count_tokens: %+v", e)
	}
}

func BenchmarkStream(b *testing.B) {
	r := parse(b, string(load(b, "llamacpp/v1_messages_stream.http").ReqBody))
	p := enginePayloads(b, "llamacpp/v1_chat_completions_stream_usage.http")
	var out []byte
	n := 0
	for _, pl := range p {
		n += len(pl)
	}
	b.ReportAllocs()
	b.SetBytes(int64(n))
	for b.Loop() {
		s := r.NewStream(translate.Env{})
		out = out[:0]
		for _, pl := range p {
			out, _ = s.Feed(out, pl)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(p)), "ns/chunk")
}

func ExampleRequest_NewStream() {
	r, _ := ParseRequest([]byte(`{"model":"tiny","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	body, _ := r.ChatBody(translate.Target{Model: "tiny:latest"})
	fmt.Println(string(body))
	s := r.NewStream(translate.Env{NewID: func(p string) string { return p + "1" }})
	var out []byte
	for _, p := range []string{`{"choices":[{"index":0,"delta":{"content":"Hi"}}]}`, `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`, `[DONE]`} {
		out, _ = s.Feed(out, []byte(p))
	}
	fmt.Print(string(out))
	// Output:
	// {"model":"tiny:latest","messages":[{"role":"user","content":"hi"}],"max_tokens":8,"stream":true,"stream_options":{"include_usage":true}}
	// event: message_start
	// data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"tiny","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}
	//
	// event: content_block_start
	// data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}
	//
	// event: content_block_delta
	// data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}
	//
	// event: content_block_stop
	// data: {"type":"content_block_stop","index":0}
	//
	// event: message_delta
	// data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":5,"output_tokens":1}}
	//
	// event: message_stop
	// data: {"type":"message_stop"}
}
