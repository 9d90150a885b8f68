package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/tools/enginefake"
)

func startFake(t *testing.T, opts enginefake.Options) *enginefake.Server {
	t.Helper()
	f, err := enginefake.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// sseEvents reads a whole SSE response into its data payloads.
func sseEvents(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

type kindCase struct {
	kind      engine.Kind
	chat, emb string // engine ids serving a chat and an embedding model
	hasCompl  bool
	// usage: chunks carrying usage in the engine's stream, as captured, for
	// chat and completions, asked for (include_usage) and not. Ollama
	// ignores include_usage on /v1/completions, the captured LM Studio on
	// both; llama-server puts usage in its completions' last chunk (which
	// has choices) whatever was asked.
	usage      map[string]int
	setupFakes func(t *testing.T, src *memSource) []*enginefake.Server
}

func kindCases() []kindCase {
	two := func(k engine.Kind) func(t *testing.T, src *memSource) []*enginefake.Server {
		return func(t *testing.T, src *memSource) []*enginefake.Server {
			f := startFake(t, enginefake.Options{Kind: enginefake.Kind(k), Models: []enginefake.Model{{Name: "org/chat:Q4"}, {Name: "embed model", Embedding: true}}})
			src.addEngine(string(k), k, f.URL(), "org/chat:Q4", "embed model")
			return []*enginefake.Server{f}
		}
	}
	return []kindCase{
		{kind: engine.Ollama, chat: "ollama", emb: "ollama", hasCompl: true, setupFakes: two(engine.Ollama), usage: map[string]int{"chat asked": 1}},
		{kind: engine.VLLM, chat: "vllm", emb: "vllm", hasCompl: true, setupFakes: two(engine.VLLM), usage: map[string]int{"chat asked": 1, "completions asked": 1}},
		{kind: engine.LMStudio, chat: "lmstudio", emb: "lmstudio", hasCompl: true, setupFakes: two(engine.LMStudio), usage: map[string]int{}},
		{kind: engine.LlamaCPP, chat: "llamacpp", emb: "llamacpp-embed", hasCompl: true, usage: map[string]int{"chat asked": 1, "completions asked": 1, "completions": 1}, setupFakes: func(t *testing.T, src *memSource) []*enginefake.Server {
			// llama-server serves one model; embeddings need --embeddings.
			c := startFake(t, enginefake.Options{Kind: enginefake.LlamaCpp, Models: []enginefake.Model{{Name: "org/chat:Q4"}}})
			e := startFake(t, enginefake.Options{Kind: enginefake.LlamaCpp, Models: []enginefake.Model{{Name: "embed model", Embedding: true}}})
			src.addEngine("llamacpp", engine.LlamaCPP, c.URL(), "org/chat:Q4")
			src.addEngine("llamacpp-embed", engine.LlamaCPP, e.URL(), "embed model")
			return []*enginefake.Server{c, e}
		}},
	}
}

// Every endpoint × every engine kind, streaming and not, through the whole
// security chain, against fakes that answer like the real engines.
func TestEveryEndpointEveryEngine(t *testing.T) {
	for _, kc := range kindCases() {
		t.Run(string(kc.kind), func(t *testing.T) {
			src, key := newMemSource(t)
			fakes := kc.setupFakes(t, src)
			p := startProxy(t, src, key)
			hdr := append(p.auth(), "Content-Type", "application/json", "Cookie", "session=secret-cookie", "X-Api-Key", "client-secret")
			chatID := engine.ModelID(kc.chat, "org/chat:Q4")

			r := p.do(t, "POST", "/v1/chat/completions", `{"model":"`+chatID+`","messages":[{"role":"user","content":"hi"}],"max_tokens":8}`, hdr...)
			var chat struct {
				Object  string `json:"object"`
				Choices []struct {
					Message struct{ Content *string } `json:"message"`
				} `json:"choices"`
				Usage *struct {
					TotalTokens int `json:"total_tokens"`
				} `json:"usage"`
			}
			if r.status != 200 || json.Unmarshal(r.body, &chat) != nil || chat.Object != "chat.completion" || len(chat.Choices) == 0 || chat.Usage == nil {
				t.Fatalf("chat = %d %s", r.status, r.body)
			}

			for _, usage := range []bool{true, false} {
				opts, asked := "", ""
				if usage {
					opts, asked = `,"stream_options":{"include_usage":true}`, " asked"
				}
				r = p.do(t, "POST", "/v1/chat/completions", `{"model":"`+chatID+`","messages":[{"role":"user","content":"hi"}],"stream":true`+opts+`}`, hdr...)
				checkStream(t, r, "chat.completion.chunk", usage, kc.usage["chat"+asked])
				if kc.hasCompl {
					r = p.do(t, "POST", "/v1/completions", `{"model":"`+chatID+`","prompt":"once upon","stream":true`+opts+`}`, hdr...)
					checkStream(t, r, "text_completion", usage, kc.usage["completions"+asked])
				}
			}
			if kc.hasCompl {
				r = p.do(t, "POST", "/v1/completions", `{"model":"`+chatID+`","prompt":"once upon","max_tokens":8}`, hdr...)
				if r.status != 200 || !bytes.Contains(r.body, []byte(`"usage"`)) || !bytes.Contains(r.body, []byte(`"choices"`)) {
					t.Fatalf("completions = %d %s", r.status, r.body)
				}
			}

			r = p.do(t, "POST", "/v1/embeddings", `{"model":"`+engine.ModelID(kc.emb, "embed model")+`","input":["a","b"]}`, hdr...)
			var emb struct {
				Data []struct {
					Embedding []float64 `json:"embedding"`
				} `json:"data"`
			}
			if r.status != 200 || json.Unmarshal(r.body, &emb) != nil || len(emb.Data) == 0 || len(emb.Data[0].Embedding) == 0 {
				t.Fatalf("embeddings = %d %.300s", r.status, r.body)
			}

			// What the engines saw: their own model names, never the client's credentials.
			seen := 0
			for _, f := range fakes {
				for _, req := range f.Requests() {
					seen++
					for _, h := range []string{"Authorization", "Cookie", "X-Api-Key"} {
						if req.Header.Get(h) != "" {
							t.Fatalf("engine received %s on %s", h, req.Path)
						}
					}
					var body struct{ Model string }
					if json.Unmarshal(req.Body, &body) == nil && body.Model != "org/chat:Q4" && body.Model != "embed model" {
						t.Fatalf("engine received model %q", body.Model)
					}
				}
			}
			if seen < 4 {
				t.Fatalf("engines saw %d requests", seen)
			}
		})
	}
}

// checkStream asserts an SSE answer: headers, chunk objects, the final
// [DONE], and usage exactly as asked: a client that asked gets the
// engine's usage chunk (real counts, never estimated), one that did not
// gets no usage and no chunk without choices.
// wantChunks is how many chunks carry usage: what the engine sends, as
// captured (FLM adds none).
func checkStream(t *testing.T, r reply, object string, wantUsage bool, wantChunks int) {
	t.Helper()
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") ||
		r.header.Get("Cache-Control") != "no-cache" || r.header.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("stream = %d %v %.300s", r.status, r.header, r.body)
	}
	ev := sseEvents(t, r.body)
	if len(ev) < 3 || ev[len(ev)-1] != "[DONE]" {
		t.Fatalf("stream events = %q", ev)
	}
	usage := 0
	for _, e := range ev[:len(ev)-1] {
		var chunk struct {
			Object  string            `json:"object"`
			Choices []json.RawMessage `json:"choices"`
			Usage   *struct {
				PromptTokens int  `json:"prompt_tokens"`
				TotalTokens  int  `json:"total_tokens"`
				Estimated    *any `json:"flm_estimated"`
			} `json:"usage"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal([]byte(e), &chunk); err != nil || chunk.Error != nil {
			t.Fatalf("bad event %q", e)
		}
		if chunk.Object != object {
			t.Fatalf("event object %q, want %q", chunk.Object, object)
		}
		if chunk.Usage != nil {
			usage++
			if chunk.Usage.TotalTokens == 0 || chunk.Usage.Estimated != nil {
				t.Fatalf("usage chunk %s is not the engine's", e)
			}
		}
		if len(chunk.Choices) == 0 && !wantUsage {
			t.Fatalf("a client that did not ask for usage got a chunk without choices: %s", e)
		}
	}
	if usage != wantChunks {
		t.Fatalf("usage asked %v: %d chunks with usage, want %d: %q", wantUsage, usage, wantChunks, ev)
	}
}

func chatBody(model string, stream bool) string {
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"stream":%v}`, model, stream)
}

func TestBadRequests(t *testing.T) {
	src, key := newMemSource(t)
	f := startFake(t, enginefake.Options{Kind: enginefake.Ollama, Models: []enginefake.Model{{Name: "same"}, {Name: "only-here"}}})
	g := startFake(t, enginefake.Options{Kind: enginefake.LlamaCpp, Models: []enginefake.Model{{Name: "same"}}})
	src.addEngine("ollama", engine.Ollama, f.URL(), "same", "only-here")
	src.addEngine("llamacpp", engine.LlamaCPP, g.URL(), "same")
	p := startProxy(t, src, key)
	hdr := append(p.auth(), "Content-Type", "application/json")
	cases := []struct {
		body   string
		status int
		code   string
	}{
		{`{"model":"same","messages":[{"role":"user","content":"x"}]`, 400, "invalid_request"},
		{`{"model":"same","messages":"x"}`, 400, "invalid_request"},
		{`{"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request"},
		{`{"model":"same"}`, 400, "invalid_request"},
		{"{\"model\":\"same\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}", 400, "invalid_request"},
		{chatBody("nope", false), 404, "model_not_found"},
		{chatBody("flm://ollama/nope", false), 404, "model_not_found"},
		{chatBody("same", false), 400, "ambiguous_model"},
		{`{"model":"only-here","messages":[{"role":"user","content":"x"}],"n":3}`, 400, "unsupported_parameter"},
	}
	for _, c := range cases {
		r := p.do(t, "POST", "/v1/chat/completions", c.body, hdr...)
		if r.status != c.status || envelopeOf(t, r) != c.code {
			t.Errorf("%.60q → %d %s, want %d %s", c.body, r.status, r.body, c.status, c.code)
		}
	}
	r := p.do(t, "POST", "/v1/chat/completions", chatBody("same", false), hdr...)
	if !bytes.Contains(r.body, []byte("flm://llamacpp/same")) || !bytes.Contains(r.body, []byte("flm://ollama/same")) {
		t.Fatalf("ambiguity does not list the candidates: %s", r.body)
	}
	if n := len(f.Requests()) + len(g.Requests()); n != 0 {
		t.Fatalf("refused requests reached the engines %d times", n)
	}
}

// An engine error mid-stream becomes an error event then [DONE].
func TestMidStreamFailure(t *testing.T) {
	src, key := newMemSource(t)
	f := startFake(t, enginefake.Options{Kind: enginefake.VLLM, Models: []enginefake.Model{{Name: "m"}}, Failure: enginefake.FailReset})
	src.addEngine("vllm", engine.VLLM, f.URL(), "m")
	p := startProxy(t, src, key)
	r := p.do(t, "POST", "/v1/chat/completions", chatBody("m", true), p.auth()...)
	ev := sseEvents(t, r.body)
	if r.status != 200 || len(ev) < 2 || ev[len(ev)-1] != "[DONE]" || !strings.Contains(ev[len(ev)-2], `"stream_error"`) {
		t.Fatalf("stream with a reset engine = %d %q", r.status, ev)
	}
}

// A client that disconnects mid-stream cancels the engine request.
func TestClientDisconnectCancelsUpstream(t *testing.T) {
	src, key := newMemSource(t)
	f := startFake(t, enginefake.Options{Kind: enginefake.Ollama, Models: []enginefake.Model{{Name: "m"}}, TTFT: 50 * time.Millisecond, TokensPerSecond: 5})
	src.addEngine("ollama", engine.Ollama, f.URL(), "m")
	p := startProxy(t, src, key)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", p.url+"/v1/chat/completions", strings.NewReader(chatBody("m", true)))
	req.Header.Set("Authorization", "Bearer "+key.Plain)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(3 * time.Second)
	for f.Canceled() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if f.Canceled() != 1 {
		t.Fatalf("engine saw %d cancellations", f.Canceled())
	}
}

// llama-server closes its connection after every stream while announcing
// keep-alive; a proxy that reuses the pooled connection fails about one
// stream in five. FLM must not.
func TestLlamaCppClosesAfterStreams(t *testing.T) {
	src, key := newMemSource(t)
	f := startFake(t, enginefake.Options{Kind: enginefake.LlamaCpp, Models: []enginefake.Model{{Name: "m"}}})
	src.addEngine("llamacpp", engine.LlamaCPP, f.URL(), "m")
	p := startProxy(t, src, key)
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				stream := (i+w)%2 == 0
				r := p.do(t, "POST", "/v1/chat/completions", chatBody("m", stream), p.auth()...)
				if r.status != 200 || stream && !bytes.Contains(r.body, []byte("data: [DONE]")) || bytes.Contains(r.body, []byte("stream_error")) {
					errs <- fmt.Sprintf("%d %.200s", r.status, r.body)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// An engine that dies gets a clean 502 in the envelope; when it is back,
// requests succeed again without a restart.
func TestEngineDiesAndComesBack(t *testing.T) {
	src, key := newMemSource(t)
	f := startFake(t, enginefake.Options{Kind: enginefake.Ollama, Models: []enginefake.Model{{Name: "m"}}})
	addr := f.Addr()
	src.addEngine("ollama", engine.Ollama, f.URL(), "m")
	p := startProxy(t, src, key)
	f.Close()
	r := p.do(t, "POST", "/v1/chat/completions", chatBody("m", false), p.auth()...)
	if r.status != 502 || envelopeOf(t, r) != "engine_unreachable" {
		t.Fatalf("dead engine = %d %s", r.status, r.body)
	}
	g := startFake(t, enginefake.Options{Kind: enginefake.Ollama, Addr: addr, Models: []enginefake.Model{{Name: "m"}}})
	_ = g
	r = p.do(t, "POST", "/v1/chat/completions", chatBody("m", false), p.auth()...)
	if r.status != 200 {
		t.Fatalf("engine back = %d %s", r.status, r.body)
	}
	// Engine errors keep the envelope.
	g.SetFailure(enginefake.Fail500)
	r = p.do(t, "POST", "/v1/chat/completions", chatBody("m", false), p.auth()...)
	if r.status != 502 || envelopeOf(t, r) != "engine_error" {
		t.Fatalf("engine 500 = %d %s", r.status, r.body)
	}
}

// An engine started after the proxy is served without a restart.
func TestEngineStartedLater(t *testing.T) {
	src, key := newMemSource(t)
	p := startProxy(t, src, key)
	if r := p.do(t, "POST", "/v1/chat/completions", chatBody("late", false), p.auth()...); r.status != 404 {
		t.Fatalf("before: %d", r.status)
	}
	f := startFake(t, enginefake.Options{Kind: enginefake.VLLM, Models: []enginefake.Model{{Name: "late"}}})
	src.addEngine("vllm", engine.VLLM, f.URL(), "late")
	time.Sleep(1100 * time.Millisecond) // refresh-on-miss runs at most once a second
	r := p.do(t, "POST", "/v1/chat/completions", chatBody("late", false), p.auth()...)
	if r.status != 200 {
		t.Fatalf("after: %d %s", r.status, r.body)
	}
	io.Discard.Write(nil)
}
