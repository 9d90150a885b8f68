package enginefake

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Anthropic's /v1/messages and OpenAI's /v1/responses, which llama-server and
// Ollama speak natively (fixtures/*/api_families).

const (
	messagesBody       = `{"model":%q,"max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`
	messagesStreamBody = `{"model":%q,"max_tokens":16,"messages":[{"role":"user","content":"hi"}],"stream":true}`
)

func withModel(format, model string) string {
	b, _ := json.Marshal(model)
	return strings.Replace(format, "%q", string(b), 1)
}

// namedEvents returns the SSE events of a streamed answer, checking the
// framing every Anthropic and Responses client relies on: each event has an
// "event:" line naming its data's "type".
func namedEvents(t *testing.T, body []byte) []SSEEvent {
	t.Helper()
	events, err := SSEStream(body)
	if err != nil {
		t.Fatalf("bad SSE: %v\n%s", err, body)
	}
	if len(events) == 0 {
		t.Fatal("no events")
	}
	for i, e := range events {
		if typ, _ := field(t, e.Data, "type").(string); e.Name == "" || e.Name != typ {
			t.Errorf("event %d: named %q, type %q", i, e.Name, typ)
		}
	}
	return events
}

func TestOllamaMessages(t *testing.T) {
	srv := startFake(t, Options{Kind: Ollama, Models: oddModels()})
	c := testClient()
	url := srv.URL() + "/v1/messages"

	// Ollama echoes the name as written (no ":latest" added), also nested in
	// message_start.
	r := post(t, c, url, withModel(messagesBody, "has space"))
	if r.Status != 200 || field(t, r.Body, "model") != "has space" {
		t.Fatalf("plain: %d %s", r.Status, r.Body)
	}
	wantShape(t, "plain", mustFixture("ollama/api_families/v1_messages.http").Response.Body, r.Body)

	r = post(t, c, url, withModel(messagesStreamBody, "org/model:Q4"))
	if r.Status != 200 || r.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %q", r.Status, r.Header.Get("Content-Type"))
	}
	events := namedEvents(t, r.Body)
	if events[0].Name != "message_start" || events[len(events)-1].Name != "message_stop" {
		t.Errorf("stream runs from %q to %q", events[0].Name, events[len(events)-1].Name)
	}
	msg, _ := field(t, events[0].Data, "message").(map[string]any)
	if msg["model"] != "org/model:Q4" {
		t.Errorf("message_start model %v", msg["model"])
	}

	// Errors use Anthropic's envelope, not OpenAI's.
	for _, tc := range []struct {
		body, errType string
		status        int
	}{
		{withModel(messagesBody, "nope"), "not_found_error", 404},
		{withModel(messagesBody, "ünïcödé"), "invalid_request_error", 400}, // an embedding model
		{`{"max_tokens":16,"messages":[]}`, "invalid_request_error", 400},
		{`{"model":`, "invalid_request_error", 400},
	} {
		r = post(t, c, url, tc.body)
		e, _ := field(t, r.Body, "error").(map[string]any)
		if r.Status != tc.status || field(t, r.Body, "type") != "error" || e["type"] != tc.errType || e["message"] == "" {
			t.Errorf("%s: %d %s", tc.body, r.Status, r.Body)
		}
	}
	r = post(t, c, url, withModel(messagesBody, "nope"))
	wantShape(t, "unknown model", mustFixture("ollama/api_families/v1_messages_unknown_model.http").Response.Body, r.Body)
	if !strings.Contains(string(r.Body), `"model 'nope' not found"`) {
		t.Errorf("unknown model text: %s", r.Body)
	}

	// Ollama has no count_tokens (not captured, not routed): gin's 404.
	if r = post(t, c, url+"/count_tokens", withModel(messagesBody, "has space")); r.Status != 404 {
		t.Errorf("count_tokens: %d %s", r.Status, r.Body)
	}

	srv.SetFailure(Fail500)
	r = post(t, c, url, withModel(messagesBody, "has space"))
	if e, _ := field(t, r.Body, "error").(map[string]any); r.Status != 500 || e["type"] != "api_error" {
		t.Errorf("Fail500: %d %s", r.Status, r.Body)
	}
}

func TestOllamaResponses(t *testing.T) {
	srv := startFake(t, Options{Kind: Ollama, Models: oddModels()})
	c := testClient()
	url := srv.URL() + "/v1/responses"

	r := post(t, c, url, `{"model":"has space","input":"hi"}`)
	if r.Status != 200 || field(t, r.Body, "model") != "has space" {
		t.Fatalf("plain: %d %s", r.Status, r.Body)
	}
	// Ollama echoes instructions and max_output_tokens: null when absent.
	if field(t, r.Body, "instructions") != nil || field(t, r.Body, "max_output_tokens") != nil {
		t.Errorf("absent fields not null: %s", r.Body)
	}
	r = post(t, c, url, `{"model":"has space","instructions":"Be terse.","input":[{"role":"user","content":"hi"}],"max_output_tokens":7}`)
	wantShape(t, "messages input", mustFixture("ollama/api_families/v1_responses_messages.http").Response.Body, r.Body)
	if field(t, r.Body, "instructions") != "Be terse." || field(t, r.Body, "max_output_tokens") != json.Number("7") {
		t.Errorf("echo: %s", r.Body)
	}

	r = post(t, c, url, `{"model":"org/model:Q4","input":"hi","instructions":"x","stream":true}`)
	events := namedEvents(t, r.Body)
	last := events[len(events)-1]
	if last.Name != "response.completed" {
		t.Fatalf("last event %q", last.Name)
	}
	resp, _ := field(t, last.Data, "response").(map[string]any)
	if resp["model"] != "org/model:Q4" || resp["instructions"] != "x" {
		t.Errorf("response.completed: model %v instructions %v", resp["model"], resp["instructions"])
	}

	r = post(t, c, url, `{"model":"nope","input":"hi"}`)
	if e, _ := field(t, r.Body, "error").(map[string]any); r.Status != 404 || e["message"] != "model 'nope' not found" {
		t.Errorf("unknown model: %d %s", r.Status, r.Body)
	}
	if r = post(t, c, url, `{"model":"ünïcödé","input":"hi"}`); r.Status != 400 {
		t.Errorf("embedding model: %d %s", r.Status, r.Body)
	}
}

func TestLlamaCppMessagesAndResponses(t *testing.T) {
	srv := startFake(t, Options{Kind: LlamaCpp, Models: []Model{{Name: "org/x"}}})
	c := testClient()

	// Single-model mode names itself whatever the request asked for.
	r := post(t, c, srv.URL()+"/v1/messages", withModel(messagesBody, "other"))
	if r.Status != 200 || field(t, r.Body, "model") != "org/x" || r.Header.Get("Server") != "llama.cpp" {
		t.Fatalf("plain: %d %v %s", r.Status, r.Header, r.Body)
	}
	// No max_tokens is accepted (Anthropic requires it, llama-server not).
	r = post(t, c, srv.URL()+"/v1/messages", `{"model":"x","messages":[{"role":"user","content":"hi"}]}`)
	if r.Status != 200 || field(t, r.Body, "stop_reason") != "max_tokens" {
		t.Errorf("no max_tokens: %d %.200s", r.Status, r.Body)
	}
	r = post(t, c, srv.URL()+"/v1/messages/count_tokens", `{"model":"x","messages":[{"role":"user","content":"hi"}]}`)
	if r.Status != 200 || field(t, r.Body, "input_tokens") == nil {
		t.Errorf("count_tokens: %d %s", r.Status, r.Body)
	}
	if r = post(t, c, srv.URL()+"/v1/messages", `{"model":"x"}`); r.Status != 400 {
		t.Errorf("no messages: %d %s", r.Status, r.Body)
	}
	if r = post(t, c, srv.URL()+"/v1/responses", `{"model":"x"`); r.Status != 500 {
		t.Errorf("malformed JSON: %d %s (llama-server answers 500)", r.Status, r.Body)
	}

	// Streams are named events, and the server closes the connection after
	// each one, like every llama-server stream.
	body := streamUntilClose(t, srv.Addr(), "/v1/messages", withModel(messagesStreamBody, "other"))
	events := namedEvents(t, body)
	msg, _ := field(t, events[0].Data, "message").(map[string]any)
	if msg["model"] != "org/x" {
		t.Errorf("message_start model %v", msg["model"])
	}
	body = streamUntilClose(t, srv.Addr(), "/v1/responses", `{"model":"x","input":"hi","stream":true}`)
	events = namedEvents(t, body)
	resp, _ := field(t, events[len(events)-1].Data, "response").(map[string]any)
	if resp["model"] != "org/x" {
		t.Errorf("response.completed model %v", resp["model"])
	}
}

// streamUntilClose posts body on a fresh connection and reads until the
// server closes it (a read deadline fails the test if it never does); it
// returns the de-chunked body.
func streamUntilClose(t *testing.T, addr, path, body string) []byte {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("%s: the server did not close the connection: %v", path, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Keep-Alive") != "timeout=5, max=100" || resp.Close {
		t.Errorf("%s: %d, headers %v (llama-server promises keep-alive)", path, resp.StatusCode, resp.Header)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNamedSSEEventsMatchTheirType: in every captured stream that names its
// events, the name is the data's "type" (the rule of both protocols).
func TestNamedSSEEventsMatchTheirType(t *testing.T) {
	fixtures, err := Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for _, fx := range fixtures {
		if ct, _ := fx.Response.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			continue
		}
		events, err := SSEStream(fx.Response.Body)
		if err != nil {
			t.Errorf("%s: %v", fx.Name, err)
			continue
		}
		if events[0].Name == "" {
			continue
		}
		named++
		for i, e := range events {
			var v struct{ Type string }
			if err := json.Unmarshal(e.Data, &v); err != nil || v.Type != e.Name {
				t.Errorf("%s event %d: named %q, data %.80s", fx.Name, i, e.Name, e.Data)
			}
		}
	}
	if named != 4 {
		t.Errorf("%d captured streams name their events, want 4 (messages and responses, two engines)", named)
	}
}

func TestSSEStreamParsesNames(t *testing.T) {
	events, err := SSEStream([]byte("event: a\ndata: {}\n\ndata: [DONE]\n\n"))
	if err != nil || len(events) != 2 || events[0].Name != "a" || events[1].Name != "" ||
		!bytes.Equal(events[1].Data, []byte("[DONE]")) {
		t.Errorf("got %+v, %v", events, err)
	}
	for _, bad := range []string{"event: a\n\n", "event: \ndata: {}\n\n", "event: a\ndata: {}\ndata: {}\n\n", "id: 1\ndata: {}\n\n"} {
		if _, err := SSEStream([]byte(bad)); err == nil {
			t.Errorf("SSEStream(%q) accepted", bad)
		}
	}
}
