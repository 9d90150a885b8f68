package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A client that pauses reading for longer than the idle timeout (but
// shorter than the write timeout) while the engine is healthy: the wait
// is the client's, not the engine's. The stream arrives whole, and
// nothing is counted against the engine.
func TestReviewStreamPausedClientNotBlamedOnEngine(t *testing.T) {
	const events = 2000
	big := strings.Repeat("x", 4000) // 8 MB in all: far more than the socket buffers
	eng := newScriptEngine(t, func(w http.ResponseWriter, r *http.Request) {
		rc := sseHeaders(w)
		for i := range events {
			if _, err := io.WriteString(w, chunkEvent(i, big)); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	})
	p := streamProxy(t, eng.URL, timeouts(10*time.Second, 500*time.Millisecond))
	// A small receive window, so FLM's writes wait while the client pauses.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	body := chatBody("m", true)
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", p.key.Plain, len(body), body)
	br := bufio.NewReaderSize(conn, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("response %v %v", resp, err)
	}
	time.Sleep(2 * time.Second) // the pause: four idle timeouts
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the stream after the pause: %v (%d bytes)", err, len(got))
	}
	ev := sseEvents(t, got)
	if bytes.Contains(got, []byte("stream_error")) {
		i := bytes.Index(got, []byte(`"error"`))
		t.Fatalf("a healthy stream was cut after the client's pause: %s", got[i:min(len(got), i+300)])
	}
	if len(ev) != events+1 || ev[events] != "[DONE]" {
		t.Fatalf("%d events, want %d and [DONE]", len(ev), events+1)
	}
	if n := relayTimeouts(p, "engine_idle"); n != 0 {
		t.Fatalf("flm_relay_timeouts_total{kind=engine_idle} = %v: the client's pause was blamed on the engine", n)
	}
}

// The engine's own error event inside a stream quotes its internal URL
// and the model's file path. The key holder gets the event with the
// engine's words, minus what tells where engines and files live — as the
// same error answered without a stream.
func TestReviewStreamEngineErrorRedacted(t *testing.T) {
	const secretMsg = `Post \"http://10.0.0.7:38417/completion\": EOF (model /home/alice/models/secret.gguf; also C:\\Users\\alice\\m.gguf and ~/models/x.gguf)`
	var engURL string
	errEvents := []string{
		`data: {"error":{"message":"` + secretMsg + `","type":"server_error","code":500}}` + "\n\n",
		`data: {"error":"` + secretMsg + `"}` + "\n\n",
		"event: error\n" + `data: {"type":"error","error":{"type":"api_error","message":"` + secretMsg + `"}}` + "\n\n",
		`data: {"error":{"message":"runner at ENGINE crashed loading /srv/models/qwen/model.safetensors"}}` + "\n\n",
	}
	content := chunkEvent(0, " see /home/alice/notes.txt and http://10.0.0.7:1/") // the model's own words
	eng := newScriptEngine(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/completions" { // the same error, not streamed
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"error":{"message":"`+secretMsg+`"}}`)
			return
		}
		rc := sseHeaders(w)
		_, _ = io.WriteString(w, content)
		for _, e := range errEvents {
			_, _ = io.WriteString(w, strings.ReplaceAll(e, "ENGINE", strings.TrimPrefix(engURL, "http://")))
			_ = rc.Flush()
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	})
	engURL = eng.URL
	u, _ := url.Parse(eng.URL)
	p := streamProxy(t, eng.URL)
	r := p.do(t, "POST", "/v1/chat/completions", chatBody("m", true), p.auth()...)
	if r.status != 200 {
		t.Fatalf("stream = %d %s", r.status, r.body)
	}
	events := sseEventsIn(r.body)
	if len(events) != 2+len(errEvents) {
		t.Fatalf("%d events: %q", len(events), r.body)
	}
	if string(events[0]) != content {
		t.Fatalf("a content chunk was altered:\n%s\nwant\n%s", events[0], content)
	}
	for i, ev := range events[1 : 1+len(errEvents)] {
		for _, secret := range []string{"10.0.0.7", "38417", "alice", "secret.gguf", `C:\\Users`, "~/models", "/srv/models", u.Host, u.Port()} {
			if bytes.Contains(ev, []byte(secret)) {
				t.Errorf("error event %d reveals %q: %s", i, secret, ev)
			}
		}
		data, ok := eventData(ev)
		var v map[string]any
		if !ok || json.Unmarshal(data, &v) != nil || v["error"] == nil {
			t.Fatalf("error event %d is no longer an error event: %q", i, ev)
		}
		if !bytes.Contains(ev, []byte("EOF (model <path>")) && !bytes.Contains(ev, []byte("crashed loading <path>")) {
			t.Errorf("error event %d lost the engine's words: %s", i, ev)
		}
	}
	if !bytes.HasPrefix(events[3], []byte("event: error\n")) {
		t.Errorf("the event's other fields were lost: %q", events[3])
	}
	// Not streamed: the same words, the same redaction.
	r = p.do(t, "POST", "/v1/completions", `{"model":"m","prompt":"x"}`, p.auth()...)
	var e struct{ Error struct{ Message string } }
	if json.Unmarshal(r.body, &e) != nil || !strings.Contains(e.Error.Message, `Post "<url>": EOF (model <path>; also <path> and <path>)`) {
		t.Fatalf("non-streamed error = %d %s", r.status, r.body)
	}
}

func TestReviewRedactPaths(t *testing.T) {
	for in, want := range map[string]string{
		"failed to load model '/models/llama.gguf'":         "failed to load model '<path>'",
		"open /home/alice/m.gguf: no such file":             "open <path>: no such file",
		"(model /home/alice/models/secret.gguf)":            "(model <path>)",
		`model C:\Users\alice\m.gguf not found`:             "model <path> not found",
		"model C:/Users/alice/m.gguf not found":             "model <path> not found",
		`share \\nas\models\m.gguf gone`:                    "share <path> gone",
		"see ~/models/x.gguf.":                              "see <path>.",
		"path=/var/lib/ollama/blobs/sha256-1 bad":           "path=<path> bad",
		"POST /v1/chat/completions is not supported":        "POST /v1/chat/completions is not supported",
		"GET /api/tags failed":                              "GET /api/tags failed",
		"endpoint /completion failed":                       "endpoint /completion failed",
		"input/output error and 3/4 done, ratio 1/2":        "input/output error and 3/4 done, ratio 1/2",
		"Post \"http://10.0.0.7:38417/completion\": EOF":    "Post \"<url>\": EOF",
		"unix:///run/ollama.sock refused":                   "<url> refused",
		"The model `/data/models/qwen` does not exist.":     "The model `<path>` does not exist.",
		"dial tcp 192.168.1.5:11434: refused (/tmp/x/y.so)": "dial tcp <address>: refused (<path>)",
	} {
		if got := redactEngineText(in, "http://gpu-box.lan:8000"); got != want {
			t.Errorf("redactEngineText(%q) = %q, want %q", in, got, want)
		}
	}
}
