package enginefake

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	ollamaChatStream = `{"model":"tiny","messages":[{"role":"user","content":"hi"}]}`
	openAIChatStream = `{"model":"%s","messages":[{"role":"user","content":"hi"}],"stream":true}`
)

func openAIStream(model string) string { return strings.Replace(openAIChatStream, "%s", model, 1) }

// waitFor polls cond for at most 3 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLatencyDelaysHeaders(t *testing.T) {
	srv := startFake(t, Options{Kind: VLLM, Latency: 150 * time.Millisecond})
	c := testClient()
	start := time.Now()
	if r := get(t, c, srv.URL()+"/health"); r.Status != 200 {
		t.Fatal(r.Status)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("answered after %v, latency 150ms", d)
	}
	srv.SetLatency(300 * time.Millisecond)
	start = time.Now()
	get(t, c, srv.URL()+"/version")
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("answered after %v, latency set to 300ms", d)
	}
}

// readLines reads a streamed body line by line, noting when each non-empty
// line arrived.
func readLines(t *testing.T, body io.Reader, start time.Time) (lines []string, at []time.Duration) {
	t.Helper()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if sc.Text() != "" {
			lines = append(lines, sc.Text())
			at = append(at, time.Since(start))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading stream: %v", err)
	}
	return lines, at
}

func TestTTFTAndTokensPerSecondPaceStreams(t *testing.T) {
	const ttft, tps = 100 * time.Millisecond, 50.0 // 20 ms between later chunks
	for _, tc := range []struct {
		kind Kind
		path string
		body string
	}{
		{Ollama, "/api/chat", ollamaChatStream},
		{LlamaCpp, "/v1/chat/completions", openAIStream("x")}, // the raw (hijacked) writer
		{VLLM, "/v1/chat/completions", openAIStream(vllmCapturedModel)},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			t.Parallel()
			srv := startFake(t, Options{Kind: tc.kind, TTFT: ttft, TokensPerSecond: tps})
			start := time.Now()
			resp, err := testClient().Post(srv.URL()+tc.path, "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			headers := time.Since(start)
			lines, at := readLines(t, resp.Body, start)
			if len(lines) < 3 {
				t.Fatalf("only %d lines", len(lines))
			}
			if headers >= at[0] {
				t.Errorf("headers at %v, first chunk at %v: headers must come first", headers, at[0])
			}
			if at[0] < ttft {
				t.Errorf("first chunk after %v, TTFT %v", at[0], ttft)
			}
			wantTotal := ttft + time.Duration(len(lines)-1)*time.Second/time.Duration(tps)
			if last := at[len(at)-1]; last < wantTotal {
				t.Errorf("%d chunks done after %v, want at least %v", len(lines), last, wantTotal)
			}
			for i := 1; i < len(at); i++ {
				if at[i] < at[i-1] {
					t.Errorf("chunk %d before chunk %d", i, i-1)
				}
			}
		})
	}
}

func TestFailHang(t *testing.T) {
	srv := startFake(t, Options{Kind: Ollama, Failure: FailHang})
	c := &http.Client{Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err := c.Get(srv.URL() + "/api/version")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want the client's timeout, got %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("gave up after %v", d)
	}
	waitFor(t, "the hung request to count as canceled", func() bool { return srv.Canceled() == 1 })

	// Close ends a request that is still hanging.
	go func() { _, _ = (&http.Client{Timeout: 5 * time.Second}).Get(srv.URL() + "/api/tags") }()
	waitFor(t, "the second request", func() bool { return len(srv.Requests()) == 2 })
	done := make(chan struct{})
	go func() { srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not return with a hanging request")
	}
}

func TestFailResetMidStream(t *testing.T) {
	for _, tc := range []struct {
		kind Kind
		path string
		body string
	}{
		{Ollama, "/api/chat", ollamaChatStream},
		{LlamaCpp, "/v1/chat/completions", openAIStream("x")},
		{LMStudio, "/v1/chat/completions", openAIStream("qwen2.5-7b-instruct")},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			srv := startFake(t, Options{Kind: tc.kind, Failure: FailReset})
			resp, err := testClient().Post(srv.URL()+tc.path, "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatalf("the stream should start before the reset: %v", err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			first, err := br.ReadString('\n')
			if err != nil || strings.TrimSpace(first) == "" {
				t.Fatalf("no first chunk: %q %v", first, err)
			}
			_, err = io.ReadAll(br)
			if err == nil {
				t.Fatal("the stream ended cleanly; want a connection error")
			}
			t.Logf("client sees: %v", err)
		})
	}
	// Non-stream: reset before any answer.
	srv := startFake(t, Options{Kind: VLLM, Failure: FailReset})
	if _, err := testClient().Get(srv.URL() + "/v1/models"); err == nil {
		t.Error("non-stream request answered despite FailReset")
	}
}

func TestFailLoadingPerKind(t *testing.T) {
	c := testClient()
	t.Run("vllm", func(t *testing.T) {
		srv := startFake(t, Options{Kind: VLLM, Failure: FailLoading})
		if r := get(t, c, srv.URL()+"/health"); r.Status != 503 || len(r.Body) != 0 || r.Header.Get("Server") != "uvicorn" {
			t.Errorf("/health: %d %q %v", r.Status, r.Body, r.Header)
		}
	})
	t.Run("lmstudio", func(t *testing.T) {
		srv := startFake(t, Options{Kind: LMStudio, Failure: FailLoading})
		r := post(t, c, srv.URL()+"/v1/chat/completions", openAIStream("qwen2.5-7b-instruct"))
		if r.Status != 400 || !strings.Contains(string(r.Body), "No models loaded") {
			t.Errorf("chat: %d %s", r.Status, r.Body)
		}
		if r := get(t, c, srv.URL()+"/v1/models"); r.Status != 200 {
			t.Errorf("/v1/models: %d", r.Status)
		}
	})
	t.Run("ollama", func(t *testing.T) {
		// Requests for a model wait while it loads; the rest answers.
		srv := startFake(t, Options{Kind: Ollama, Failure: FailLoading})
		if r := get(t, c, srv.URL()+"/api/version"); r.Status != 200 {
			t.Errorf("/api/version: %d", r.Status)
		}
		time.AfterFunc(200*time.Millisecond, func() { srv.SetFailure(FailNone) })
		start := time.Now()
		r := post(t, c, srv.URL()+"/api/chat", `{"model":"tiny","messages":[],"stream":false}`)
		if r.Status != 200 {
			t.Errorf("chat: %d %s", r.Status, r.Body)
		}
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Errorf("chat answered after %v, before the load finished", d)
		}
	})
}

func TestFailMalformed(t *testing.T) {
	c := testClient()
	for _, tc := range []struct {
		kind       Kind
		method     string
		path, body string
	}{
		{Ollama, "GET", "/api/tags", ""},
		{VLLM, "POST", "/v1/chat/completions", `{"model":"x","messages":[]}`}, // would be a 404
		{LlamaCpp, "GET", "/props", ""},
		{LMStudio, "GET", "/api/v0/models", ""},
	} {
		srv := startFake(t, Options{Kind: tc.kind, Failure: FailMalformed})
		r := do(t, c, tc.method, srv.URL()+tc.path, http.Header{"Content-Type": {"application/json"}}, []byte(tc.body))
		var v any
		if r.Status != 200 || json.Unmarshal(r.Body, &v) == nil {
			t.Errorf("%s %s: %d, body parses: %s", tc.kind, tc.path, r.Status, r.Body)
		}
	}
	srv := startFake(t, Options{Kind: Ollama, Failure: FailMalformed})
	r := post(t, c, srv.URL()+"/v1/chat/completions", openAIStream("tiny"))
	ev := sseData(t, r.Body)
	var v any
	if len(ev) == 0 || json.Unmarshal(ev[0], &v) == nil {
		t.Errorf("stream: want a truncated first event, got %s", r.Body)
	}
}

func TestFail500AndSetFailure(t *testing.T) {
	c := testClient()
	for _, kind := range Kinds {
		srv := startFake(t, Options{Kind: kind})
		path := map[Kind]string{Ollama: "/api/tags", VLLM: "/v1/models", LMStudio: "/v1/models", LlamaCpp: "/v1/models"}[kind]
		if r := get(t, c, srv.URL()+path); r.Status != 200 {
			t.Fatalf("%s: %d", kind, r.Status)
		}
		srv.SetFailure(Fail500)
		r := get(t, c, srv.URL()+path)
		var v map[string]any
		if r.Status != 500 || json.Unmarshal(r.Body, &v) != nil || v["error"] == nil {
			t.Errorf("%s: %d %s", kind, r.Status, r.Body)
		}
		srv.SetFailure(FailNone)
		if r := get(t, c, srv.URL()+path); r.Status != 200 {
			t.Errorf("%s: back to normal: %d", kind, r.Status)
		}
	}
}

func TestCanceledMidStream(t *testing.T) {
	for _, kind := range []Kind{Ollama, LlamaCpp} {
		t.Run(string(kind), func(t *testing.T) {
			// 10 chunks/s: the stream would last about a second.
			srv := startFake(t, Options{Kind: kind, TokensPerSecond: 10})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			path, body := "/api/chat", ollamaChatStream
			if kind == LlamaCpp {
				path, body = "/v1/chat/completions", openAIStream("x")
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL()+path, strings.NewReader(body))
			resp, err := testClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			cancel()
			resp.Body.Close()
			waitFor(t, "Canceled() == 1", func() bool { return srv.Canceled() == 1 })
		})
	}
	// A stream read to the end is not canceled.
	srv := startFake(t, Options{Kind: Ollama})
	r := post(t, testClient(), srv.URL()+"/api/chat", ollamaChatStream)
	if len(NDJSONLines(r.Body)) != 9 || srv.Canceled() != 0 {
		t.Errorf("complete stream: %d lines, canceled %d", len(NDJSONLines(r.Body)), srv.Canceled())
	}
}

func TestRequestsAreRecorded(t *testing.T) {
	srv := startFake(t, Options{Kind: VLLM, APIKey: "k"})
	c := testClient()
	r := do(t, c, "POST", srv.URL()+"/v1/chat/completions?x=1", http.Header{"Authorization": {"Bearer k"}, "Content-Type": {"application/json"}},
		[]byte(`{"messages":[{"role":"user","content":"hi"}]}`))
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if r := get(t, c, srv.URL()+"/v1/models"); r.Status != 401 || string(r.Body) != `{"error":"Unauthorized"}` {
		t.Errorf("no key: %d %s", r.Status, r.Body)
	}
	if r := get(t, c, srv.URL()+"/health"); r.Status != 200 {
		t.Errorf("/health needs no key: %d", r.Status)
	}
	reqs := srv.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests recorded", len(reqs))
	}
	if q := reqs[0]; q.Method != "POST" || q.Path != "/v1/chat/completions" || q.RawQuery != "x=1" ||
		q.Header.Get("Authorization") != "Bearer k" || !strings.Contains(string(q.Body), `"hi"`) {
		t.Errorf("recorded %+v", q)
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Kind: "tgi"},
		{Kind: Ollama, Failure: "sometimes"},
		{Kind: Ollama, Router: true},
		{Kind: LlamaCpp, Models: []Model{}},
	} {
		if s, err := Start(o); err == nil {
			s.Close()
			t.Errorf("Start(%+v) accepted", o)
		}
	}
}
