package enginefake

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const chatStreamBody = `{"messages":[{"role":"user","content":"hi"}],"max_tokens":8,"stream":true}`

// TestLlamaCppClosesAfterEveryStream: llama-server promises Keep-Alive but
// closes the connection after every streamed answer; non-streamed answers
// reuse the connection.
func TestLlamaCppClosesAfterEveryStream(t *testing.T) {
	srv := startFake(t, Options{Kind: LlamaCpp})
	client := testClient() // keep-alive on
	brokenReuse := 0
	for i := 0; i < 20; i++ {
		var r *http.Response
		for attempt := 0; ; attempt++ {
			req, _ := http.NewRequest(http.MethodPost, srv.URL()+"/v1/chat/completions", strings.NewReader(chatStreamBody))
			var err error
			r, err = client.Do(req)
			if err == nil {
				break
			}
			// The pooled connection was the one the server had just
			// closed: exactly what a reusing proxy suffers.
			brokenReuse++
			if attempt == 2 {
				t.Fatalf("stream %d: %v", i, err)
			}
		}
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil || !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
			t.Fatalf("stream %d: %v %q", i, err, body)
		}
		if r.Close || r.Header.Get("Keep-Alive") != "timeout=5, max=100" || r.Header.Get("Connection") != "" {
			t.Fatalf("stream %d: headers announce a close: %v %v", i, r.Close, r.Header)
		}
	}
	if got := srv.Connections(); got != 20 {
		t.Errorf("20 streams used %d connections, want 20 (one each)", got)
	}
	t.Logf("requests that hit a just-closed pooled connection: %d", brokenReuse)

	srv2 := startFake(t, Options{Kind: LlamaCpp})
	for i := 0; i < 20; i++ {
		r := post(t, client, srv2.URL()+"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`)
		if r.Status != 200 || r.Close {
			t.Fatalf("request %d: %d close=%v", i, r.Status, r.Close)
		}
	}
	if got := srv2.Connections(); got != 1 {
		t.Errorf("20 non-stream requests used %d connections, want 1", got)
	}
}

// TestLlamaCppStreamOnTheWire checks the raw bytes: the captured header
// lines in order, chunked framing, a final 0-chunk, then EOF from the server.
func TestLlamaCppStreamOnTheWire(t *testing.T) {
	srv := startFake(t, Options{Kind: LlamaCpp})
	conn, err := net.DialTimeout("tcp", srv.Addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(chatStreamBody)) + "\r\n\r\n" + chatStreamBody
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(conn) // returns only because the server closes
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	head, body, _ := strings.Cut(string(raw), "\r\n\r\n")
	wantHead := "HTTP/1.1 200 OK\r\nServer: llama.cpp\r\nAccess-Control-Allow-Origin: \r\nX-Accel-Buffering: no\r\n" +
		"Content-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5, max=100"
	if head != wantHead {
		t.Errorf("head:\n%q\nwant\n%q", head, wantHead)
	}
	if !strings.HasSuffix(body, "\r\n0\r\n\r\n") {
		t.Errorf("body does not end with the last chunk: %q", body[max(0, len(body)-40):])
	}
	// De-chunked, it is the captured event sequence (same count).
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(raw))), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	want, _ := SSEEvents(mustFixture("llamacpp/v1_chat_completions_stream.http").Response.Body)
	if got := sseData(t, b); len(got) != len(want) {
		t.Errorf("%d events, captured %d", len(got), len(want))
	}
}

func TestLlamaCppLoading(t *testing.T) {
	srv := startFake(t, Options{Kind: LlamaCpp, Failure: FailLoading})
	c := testClient()
	want := mustFixture("llamacpp/loading_health.http").Response.Body
	for _, p := range []string{"/health", "/props", "/v1/models", "/slots"} {
		r := get(t, c, srv.URL()+p)
		if r.Status != 503 || !r.Close || !bytes.Equal(r.Body, want) || r.Header.Get("Server") != "llama.cpp" {
			t.Errorf("GET %s: %d close=%v %s", p, r.Status, r.Close, r.Body)
		}
	}
	r := post(t, c, srv.URL()+"/v1/chat/completions", chatStreamBody)
	if r.Status != 503 || !r.Close {
		t.Errorf("chat while loading: %d close=%v", r.Status, r.Close)
	}
	// The model finishes loading.
	srv.SetFailure(FailNone)
	if r := get(t, c, srv.URL()+"/health"); r.Status != 200 || string(r.Body) != `{"status":"ok"}` {
		t.Errorf("after load: %d %s", r.Status, r.Body)
	}
}

func TestLlamaCppErrors(t *testing.T) {
	srv := startFake(t, Options{Kind: LlamaCpp})
	c := testClient()
	for _, tc := range []struct {
		body string
		code int
	}{
		{"", 500},
		{`{"messages": [ {bad`, 500},
		{`{"model":"x"}`, 400},
	} {
		r := post(t, c, srv.URL()+"/v1/chat/completions", tc.body)
		if r.Status != tc.code || !r.Close {
			t.Errorf("%q: %d close=%v %s", tc.body, r.Status, r.Close, r.Body)
		}
	}
	if r := get(t, c, srv.URL()+"/v1/chat/completions"); r.Status != 404 {
		t.Errorf("wrong method: %d", r.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, srv.URL()+"/health", nil)
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("HEAD /health: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// TestLlamaCppAliases: llama-server also answers under Ollama-like and
// unversioned names, with the captured answers of the handlers behind them.
func TestLlamaCppAliases(t *testing.T) {
	srv := startFake(t, Options{Kind: LlamaCpp})
	c := testClient()
	r := get(t, c, srv.URL()+"/api/tags") // an Ollama probe gets llama.cpp's /v1/models
	wantShape(t, "/api/tags", mustFixture("llamacpp/v1_models.http").Response.Body, r.Body)
	if r.Header.Get("Server") != "llama.cpp" {
		t.Errorf("Server %q", r.Header.Get("Server"))
	}
	if r := get(t, c, srv.URL()+"/api/version"); r.Status != 404 {
		t.Errorf("/api/version: %d", r.Status)
	}
	r = post(t, c, srv.URL()+"/api/chat", `{"model":"x","messages":[{"role":"user","content":"hi"}]}`)
	wantShape(t, "/api/chat", mustFixture("llamacpp/v1_chat_completions.http").Response.Body, r.Body)
	r = post(t, c, srv.URL()+"/completions", `{"prompt":"x"}`)
	wantShape(t, "/completions", mustFixture("llamacpp/completion.http").Response.Body, r.Body)
}
