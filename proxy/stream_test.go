package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/unjuno/flm/core/engine"
)

// scriptEngine is a loopback engine whose answer a test writes, and which
// records when a request's context ended before its handler did (FLM
// cancelled the engine request).
type scriptEngine struct {
	*httptest.Server
	canceled chan time.Time
}

func newScriptEngine(t *testing.T, h http.HandlerFunc) *scriptEngine {
	t.Helper()
	e := &scriptEngine{canceled: make(chan time.Time, 16)}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		done := make(chan struct{})
		go func() {
			select {
			case <-r.Context().Done():
				e.canceled <- time.Now()
			case <-done:
			}
		}()
		defer close(done)
		_, _ = io.Copy(io.Discard, r.Body)
		h(w, r)
	}))
	t.Cleanup(e.Close)
	return e
}

// waitCanceled returns when the engine saw its request cancelled, or fails
// after limit.
func (e *scriptEngine) waitCanceled(t *testing.T, limit time.Duration) time.Time {
	t.Helper()
	select {
	case at := <-e.canceled:
		return at
	case <-time.After(limit):
		t.Fatalf("the engine's request was not cancelled within %v", limit)
		return time.Time{}
	}
}

// sseHeaders starts an event stream and flushes its headers.
func sseHeaders(w http.ResponseWriter) *http.ResponseController {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	return rc
}

func chunkEvent(i int, extra string) string {
	return fmt.Sprintf(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"t%d%s"}}]}`+"\n\n", i, extra)
}

// streamProxy runs a proxy in front of an engine at url (model "m").
func streamProxy(t *testing.T, url string, mutate ...func(*Options)) *testProxy {
	t.Helper()
	src, key := newMemSource(t)
	src.addEngine("e", engine.VLLM, url, "m")
	return startProxy(t, src, key, mutate...)
}

func timeouts(write, idle time.Duration) func(*Options) {
	return func(o *Options) { o.StreamWriteTimeout, o.StreamIdleTimeout = write, idle }
}

func relayTimeouts(p *testProxy, kind string) float64 {
	return testutil.ToFloat64(p.srv.metrics.relayTimeouts.WithLabelValues(kind))
}

// The engine writes events apart — some back to back, some after a pause,
// three in one write — and the client receives every event in a chunk of
// its own (one write and flush), in order, exactly as sent: FLM never glues
// two events together, never splits one, adds nothing.
func TestStreamEventsNeverGlued(t *testing.T) {
	const n = 60
	var sent []string
	for i := range n {
		sent = append(sent, chunkEvent(i, ""))
	}
	sent = append(sent, "data: [DONE]\n\n")
	eng := newScriptEngine(t, func(w http.ResponseWriter, r *http.Request) {
		rc := sseHeaders(w)
		for i := 0; i < len(sent); i++ {
			switch {
			case i%10 == 5: // a burst: three events in one write
				_, _ = io.WriteString(w, sent[i]+sent[i+1]+sent[i+2])
				i += 2
			case i%10 == 0:
				_, _ = io.WriteString(w, sent[i])
				time.Sleep(2 * time.Millisecond)
			default: // back to back: FLM's read may well get several
				_, _ = io.WriteString(w, sent[i])
			}
			_ = rc.Flush()
		}
	})
	p := streamProxy(t, eng.URL)
	c := dialRaw(t, p.url)
	for round := range 3 {
		r, err := c.post("/v1/chat/completions", chatBody("m", true), p.auth()...)
		if err != nil || r.status != 200 {
			t.Fatalf("round %d: %v %d", round, err, r.status)
		}
		var got []string
		for _, ch := range r.chunks {
			evs := sseEventsIn(ch.data)
			if len(evs) != 1 || !bytes.HasSuffix(ch.data, []byte("\n\n")) {
				t.Fatalf("round %d: a chunk holds %d events: %q", round, len(evs), ch.data)
			}
			got = append(got, string(ch.data))
		}
		if strings.Join(got, "") != strings.Join(sent, "") || len(got) != len(sent) {
			t.Fatalf("round %d: client got %d events, engine sent %d", round, len(got), len(sent))
		}
	}
}

// A key holder who stops reading does not pin the relay and the engine's
// generation: after the write timeout the response is cut and the engine
// request cancelled.
func TestStreamClientStopsReading(t *testing.T) {
	started := make(chan time.Time, 1)
	big := strings.Repeat("x", 4000)
	eng := newScriptEngine(t, func(w http.ResponseWriter, r *http.Request) {
		rc := sseHeaders(w)
		started <- time.Now()
		for i := 0; i < 100_000; i++ { // up to 400 MB: far more than any socket buffers
			if _, err := io.WriteString(w, chunkEvent(i, big)); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
	})
	const wt = 300 * time.Millisecond
	p := streamProxy(t, eng.URL, timeouts(wt, 30*time.Second))
	// A client with a tiny receive window that reads the headers and then
	// nothing more.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := chatBody("m", true)
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", p.key.Plain, len(body), body)
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("status line %q %v", line, err)
	}
	start := <-started
	at := eng.waitCanceled(t, 10*time.Second)
	if el := at.Sub(start); el < wt {
		t.Fatalf("engine request cancelled after %v, before the %v write timeout", el, wt)
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(p.srv.metrics.activeStreams) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := testutil.ToFloat64(p.srv.metrics.activeStreams); n != 0 {
		t.Fatalf("%v streams still active: the relay did not return", n)
	}
	if n := relayTimeouts(p, "client_write"); n != 1 {
		t.Fatalf("flm_relay_timeouts_total{kind=client_write} = %v", n)
	}
}

// An engine that stalls after its headers (or after some events) does not
// hold the client forever: after the idle timeout the client gets the
// usual error event and [DONE], and the engine request is cancelled.
func TestStreamEngineStalls(t *testing.T) {
	for _, before := range []int{0, 2} {
		t.Run(fmt.Sprintf("after %d events", before), func(t *testing.T) {
			eng := newScriptEngine(t, func(w http.ResponseWriter, r *http.Request) {
				rc := sseHeaders(w)
				for i := range before {
					_, _ = io.WriteString(w, chunkEvent(i, ""))
					_ = rc.Flush()
				}
				<-r.Context().Done()
			})
			const idle = 300 * time.Millisecond
			p := streamProxy(t, eng.URL, timeouts(5*time.Second, idle))
			start := time.Now()
			r := p.do(t, "POST", "/v1/chat/completions", chatBody("m", true), p.auth()...)
			el := time.Since(start)
			ev := sseEvents(t, r.body)
			if r.status != 200 || len(ev) != before+2 || ev[len(ev)-1] != "[DONE]" {
				t.Fatalf("stalled stream = %d %q", r.status, ev)
			}
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if json.Unmarshal([]byte(ev[len(ev)-2]), &e) != nil || e.Error.Code != "stream_error" || !strings.Contains(e.Error.Message, "sent nothing") {
				t.Fatalf("error event %q", ev[len(ev)-2])
			}
			if el < idle || el > idle+3*time.Second {
				t.Fatalf("stream ended after %v, idle timeout %v", el, idle)
			}
			eng.waitCanceled(t, 3*time.Second)
			if n := relayTimeouts(p, "engine_idle"); n != 1 {
				t.Fatalf("flm_relay_timeouts_total{kind=engine_idle} = %v", n)
			}
		})
	}
}

// An engine that never starts a stream's answer gets a 504 after the idle
// timeout; a non-streamed answer's headers may take longer (they come after
// the whole generation), but its body may not stall.
func TestEngineIdleBeforeHeadersAndNonStreamed(t *testing.T) {
	const idle = 300 * time.Millisecond
	eng := newScriptEngine(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/chat/completions": // never answers
			<-r.Context().Done()
		case "/v1/completions": // slow headers, then a whole body
			time.Sleep(2 * idle)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"object":"text_completion","choices":[{"text":"ok"}]}`)
		case "/v1/embeddings": // half a body, then nothing
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"object":"list","data":[{"embedding":[0.1,`)
			_ = http.NewResponseController(w).Flush()
			<-r.Context().Done()
		}
	})
	p := streamProxy(t, eng.URL, timeouts(5*time.Second, idle))

	start := time.Now()
	r := p.do(t, "POST", "/v1/chat/completions", chatBody("m", true), p.auth()...)
	if r.status != http.StatusGatewayTimeout || envelopeOf(t, r) != "engine_timeout" || time.Since(start) < idle {
		t.Fatalf("stream without headers = %d %s after %v", r.status, r.body, time.Since(start))
	}
	eng.waitCanceled(t, 3*time.Second)

	r = p.do(t, "POST", "/v1/completions", `{"model":"m","prompt":"x"}`, p.auth()...)
	if r.status != 200 || !strings.Contains(string(r.body), `"ok"`) {
		t.Fatalf("non-streamed answer slower than the idle timeout = %d %s", r.status, r.body)
	}

	req, _ := http.NewRequest("POST", p.url+"/v1/embeddings", strings.NewReader(`{"model":"m","input":"x"}`))
	req.Header.Set("Authorization", "Bearer "+p.key.Plain)
	start = time.Now()
	// The connection is aborted: the client gets an error (before or while
	// reading the body, depending on what was flushed), never a whole answer.
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("a body cut by the idle timeout reached the client as if whole")
	}
	if el := time.Since(start); el < idle || el > idle+3*time.Second {
		t.Fatalf("stalled body ended after %v", el)
	}
	eng.waitCanceled(t, 3*time.Second)
	if n := relayTimeouts(p, "engine_idle"); n != 2 {
		t.Fatalf("flm_relay_timeouts_total{kind=engine_idle} = %v, want 2", n)
	}
}

// Timeouts never cut a healthy stream: gaps shorter than the idle timeout,
// a client that keeps reading, and a stream longer than both timeouts.
func TestStreamHealthyNotCut(t *testing.T) {
	const n = 12
	eng := newScriptEngine(t, func(w http.ResponseWriter, r *http.Request) {
		rc := sseHeaders(w)
		for i := range n {
			time.Sleep(100 * time.Millisecond)
			_, _ = io.WriteString(w, chunkEvent(i, ""))
			_ = rc.Flush()
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	})
	p := streamProxy(t, eng.URL, timeouts(250*time.Millisecond, 250*time.Millisecond))
	start := time.Now()
	r := p.do(t, "POST", "/v1/chat/completions", chatBody("m", true), p.auth()...)
	ev := sseEvents(t, r.body)
	if r.status != 200 || len(ev) != n+1 || ev[n] != "[DONE]" || bytes.Contains(r.body, []byte("stream_error")) {
		t.Fatalf("healthy stream = %d %q", r.status, ev)
	}
	if el := time.Since(start); el < 1000*time.Millisecond {
		t.Fatalf("the stream took %v: shorter than the timeouts it should outlast", el)
	}
	if relayTimeouts(p, "engine_idle")+relayTimeouts(p, "client_write") != 0 {
		t.Fatal("a healthy stream was counted as timed out")
	}
}

// An engine that sends a usage-only chunk unasked (vLLM with
// --enable-force-include-usage): a client that did not ask never sees a
// chunk without choices; one that asked gets it as the engine sent it.
func TestStreamUsageOnlyWhenAsked(t *testing.T) {
	usage := `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}` + "\n\n"
	eng := newScriptEngine(t, func(w http.ResponseWriter, r *http.Request) {
		rc := sseHeaders(w)
		for _, ev := range []string{chunkEvent(0, ""), chunkEvent(1, ""), usage, "data: [DONE]\n\n"} {
			_, _ = io.WriteString(w, ev)
			_ = rc.Flush()
		}
	})
	p := streamProxy(t, eng.URL)
	r := p.do(t, "POST", "/v1/chat/completions", chatBody("m", true), p.auth()...)
	if string(r.body) != chunkEvent(0, "")+chunkEvent(1, "")+"data: [DONE]\n\n" {
		t.Fatalf("client that did not ask got %q", r.body)
	}
	for _, e := range sseEvents(t, r.body) {
		var chunk struct{ Choices []any }
		if e != "[DONE]" && (json.Unmarshal([]byte(e), &chunk) != nil || len(chunk.Choices) == 0) {
			t.Fatalf("event without choices for a client that did not ask: %s", e)
		}
	}
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`
	r = p.do(t, "POST", "/v1/chat/completions", body, p.auth()...)
	if string(r.body) != chunkEvent(0, "")+chunkEvent(1, "")+usage+"data: [DONE]\n\n" {
		t.Fatalf("client that asked got %q", r.body)
	}
}

// Nothing a key holder can get back names where the engines live: not an
// engine's error body quoting internal URLs and addresses, not a transport
// failure, not a broken or stalled stream.
func TestErrorsDoNotRevealEngineAddresses(t *testing.T) {
	var leaky string
	eng := newScriptEngine(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/completions":
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, leaky)
		case "/v1/embeddings":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"message":`+fmt.Sprintf("%q", leaky)+`}}`)
		default: // a stream that breaks
			rc := sseHeaders(w)
			_, _ = io.WriteString(w, chunkEvent(0, ""))
			_ = rc.Flush()
			panic(http.ErrAbortHandler)
		}
	})
	host := strings.TrimPrefix(eng.URL, "http://")
	_, port, _ := net.SplitHostPort(host)
	leaky = fmt.Sprintf(`Post "%s/completion": dial tcp %s: connection refused; runner at 127.0.0.1:38417 (also [::1]:38417, fd00::7, localhost:%s, http://10.0.0.7:8000/v1)`, eng.URL, host, port)
	src, key := newMemSource(t)
	src.addEngine("e", engine.VLLM, eng.URL, "m")
	src.addEngine("dead", engine.Ollama, "http://127.0.0.1:1", "d")
	p := startProxy(t, src, key, timeouts(5*time.Second, 300*time.Millisecond))
	answers := []reply{
		p.do(t, "POST", "/v1/completions", `{"model":"m","prompt":"x"}`, p.auth()...),
		p.do(t, "POST", "/v1/embeddings", `{"model":"m","input":"x"}`, p.auth()...),
		p.do(t, "POST", "/v1/chat/completions", chatBody("m", true), p.auth()...),
		p.do(t, "POST", "/v1/chat/completions", chatBody("d", false), p.auth()...),
		p.do(t, "POST", "/v1/chat/completions", chatBody("d", true), p.auth()...),
	}
	for i, r := range answers {
		if r.status == 200 && !bytes.Contains(r.body, []byte("stream_error")) || r.status != 200 && r.status < 400 {
			t.Fatalf("answer %d is not an error: %d %s", i, r.status, r.body)
		}
		for _, secret := range []string{eng.URL, host, "127.0.0.1", "::1", "fd00::7", "10.0.0.7", ":" + port, "38417", "localhost:" + port} {
			if bytes.Contains(r.body, []byte(secret)) {
				t.Errorf("answer %d reveals %q: %s", i, secret, r.body)
			}
		}
	}
	// The engine's own words survive, minus the addresses.
	var e struct{ Error struct{ Message string } }
	if json.Unmarshal(answers[0].body, &e) != nil || !strings.Contains(e.Error.Message, "connection refused; runner at <address> (also <address>") {
		t.Errorf("engine message lost: %s", answers[0].body)
	}
}

func TestRedactAddrs(t *testing.T) {
	for in, want := range map[string]string{
		"model not found":                          "model not found",
		"failed at 10:30:00 with code 5":           "failed at 10:30:00 with code 5",
		"dial tcp 192.168.1.5:11434: refused":      "dial tcp <address>: refused",
		"(see 10.0.0.1).":                          "(see <address>).",
		"peer=[fe80::1%eth0]:80, ok":               "peer=<address>, ok",
		"Post \"http://gpu-box.lan:8000/x\": EOF":  "Post \"<url>\": EOF",
		"(see http://10.0.0.7:8000/v1).":           "(see <url>).",
		"gpu-box.lan:8000 refused; gpu-box.lan is": "<address> refused; <address> is",
		"version 1.2.3":                            "version 1.2.3",
		"runner on localhost:38417":                "runner on <address>",
		"std::io::Error":                           "std::io::Error",
	} {
		if got := redactAddrs(in, "http://gpu-box.lan:8000"); got != want {
			t.Errorf("redactAddrs(%q) = %q, want %q", in, got, want)
		}
	}
}

// An engine's 429 is the engine being busy: the client gets 503 with
// Retry-After, so every 429 it sees is FLM's own, with X-RateLimit-*.
func TestEngineBusyIsNot429(t *testing.T) {
	eng := newScriptEngine(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"message":"server busy"}}`)
	})
	p := streamProxy(t, eng.URL)
	r := p.do(t, "POST", "/v1/chat/completions", chatBody("m", false), p.auth()...)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || envelopeOf(t, r) != "engine_unavailable" {
		t.Fatalf("engine 429 = %d %v %s", r.status, r.header, r.body)
	}
}

// After [DONE] the engine's connection goes back to the pool: consecutive
// streams reuse one upstream connection instead of dialling each time.
func TestStreamReusesEngineConnection(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]bool{}
	eng := newScriptEngine(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		rc := sseHeaders(w)
		_, _ = io.WriteString(w, chunkEvent(0, ""))
		_ = rc.Flush()
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	})
	p := streamProxy(t, eng.URL)
	for range 5 {
		if r := p.do(t, "POST", "/v1/chat/completions", chatBody("m", true), p.auth()...); r.status != 200 {
			t.Fatalf("stream = %d", r.status)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 1 {
		t.Fatalf("5 streams used %d engine connections", len(conns))
	}
}
