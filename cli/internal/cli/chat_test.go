package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unjuno/flm/proxy/devtls"
)

// Each test below is a proxy misbehaving on a real loopback socket, and
// what `flm chat` tells the user about it.

// syncBuffer is an output stream a test may read while flm writes it;
// ready is closed at the first write.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	once  sync.Once
	ready chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{ready: make(chan struct{})} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.once.Do(func() { close(b.ready) })
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type chatRun struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// runChat runs `flm chat` with ctx as the command's context (standing in
// for the one Ctrl-C cancels) and stdout as its output.
func runChat(t *testing.T, ctx context.Context, stdout *syncBuffer, dir string, args ...string) chatRun {
	t.Helper()
	if stdout == nil {
		stdout = newSyncBuffer()
	}
	var stderr bytes.Buffer
	env := Env{Stdin: strings.NewReader(""), Stdout: stdout, Stderr: &stderr, Getenv: func(k string) string {
		if k == "FLM_DATA_DIR" {
			return dir
		}
		return hermeticEnv[k]
	}}
	args = append([]string{"chat", "--model", "tiny", "--prompt", "secret prompt text", "--api-key", "flm_testkey"}, args...)
	start := time.Now()
	code := mainWith(args, env, func(a *App) {
		if ctx != nil {
			a.ctx = ctx
		}
	})
	r := chatRun{stdout.String(), stderr.String(), code, time.Since(start)}
	if strings.Contains(r.stderr, "secret prompt text") || strings.Contains(r.stderr, "flm_testkey") {
		t.Errorf("the error repeats the prompt or the key: %s", r.stderr)
	}
	return r
}

// failed requires exit 1 with code in the JSON error object; it returns
// the message.
func (r chatRun) failed(t *testing.T, code string) string {
	t.Helper()
	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stderr), &env); err != nil {
		t.Fatalf("stderr is not an error object: %q (exit %d, stdout %q)", r.stderr, r.code, r.stdout)
	}
	if r.code != 1 || env.Error.Code != code {
		t.Fatalf("exit %d, code %s (want 1, %s): %s", r.code, env.Error.Code, code, env.Error.Message)
	}
	return env.Error.Message
}

func mustContain(t *testing.T, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%q lacks %q", s, sub)
		}
	}
}

// rawProxy is a TCP server on loopback that reads one HTTP request per
// connection and then lets serve do anything with the connection: answer
// in part, stall, cut. A stalled serve returns when the test ends.
type rawProxy struct {
	ln       net.Listener
	done     chan struct{}
	accepted chan struct{} // gets one value per request read
	wg       sync.WaitGroup
}

func newRawProxy(t *testing.T, serve func(c net.Conn, done <-chan struct{})) *rawProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rawProxy{ln: ln, done: make(chan struct{}), accepted: make(chan struct{}, 16)}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				p.accepted <- struct{}{}
				serve(c, p.done)
			}()
		}
	}()
	t.Cleanup(func() {
		close(p.done)
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *rawProxy) url() string { return "http://" + p.ln.Addr().String() }

func sseEvent(content string) string {
	b, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]string{"content": content}}}})
	return "data: " + string(b) + "\n\n"
}

// chunk is one HTTP/1.1 chunk of a chunked body.
func chunk(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }

const sseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nX-Request-Id: req_test\r\n\r\n"

func TestChatClosedPortIsProxyNotRunning(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	msg := runChat(t, nil, nil, t.TempDir(), "--url", url).failed(t, "PROXY_NOT_RUNNING")
	mustContain(t, msg, "no FLM proxy answers at "+url, "connection refused")
}

func TestChatTimeoutBeforeHeaders(t *testing.T) {
	p := newRawProxy(t, func(c net.Conn, done <-chan struct{}) { <-done })
	r := runChat(t, nil, nil, t.TempDir(), "--url", p.url(), "--timeout", "300ms")
	msg := r.failed(t, "ENGINE_TIMEOUT")
	mustContain(t, msg, "no answer from the proxy at "+p.url()+" within 300ms", "--timeout")
	if r.took < 300*time.Millisecond || r.took > 5*time.Second {
		t.Errorf("gave up after %v, want about 300ms", r.took)
	}
}

func TestChatTimeoutMidAnswer(t *testing.T) {
	t.Run("stream", func(t *testing.T) {
		p := newRawProxy(t, func(c net.Conn, done <-chan struct{}) {
			io.WriteString(c, sseHead+chunk(sseEvent("Hel")))
			<-done
		})
		r := runChat(t, nil, nil, t.TempDir(), "--url", p.url(), "--stream", "--timeout", "300ms")
		msg := r.failed(t, "ENGINE_TIMEOUT")
		mustContain(t, msg, "the answer stopped", "sent nothing for 300ms", "the answer above is incomplete")
		if r.stdout != "Hel\n" {
			t.Errorf("stdout %q, want the part received and a newline", r.stdout)
		}
	})
	t.Run("whole", func(t *testing.T) {
		p := newRawProxy(t, func(c net.Conn, done <-chan struct{}) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"choices\":[")
			<-done
		})
		r := runChat(t, nil, nil, t.TempDir(), "--url", p.url(), "--timeout", "300ms")
		mustContain(t, r.failed(t, "ENGINE_TIMEOUT"), "the answer stopped", "the answer is incomplete")
		if r.stdout != "" {
			t.Errorf("stdout %q", r.stdout)
		}
	})
}

// A slow engine that keeps streaming is never cut: --timeout bounds the
// silence between two parts, not the whole answer.
func TestChatSlowHealthyStreamIsNotCut(t *testing.T) {
	p := newRawProxy(t, func(c net.Conn, done <-chan struct{}) {
		io.WriteString(c, sseHead)
		for _, part := range []string{"a", "b", "c", "d", "e", "f"} {
			select {
			case <-done:
				return
			case <-time.After(150 * time.Millisecond):
			}
			io.WriteString(c, chunk(sseEvent(part)))
		}
		io.WriteString(c, chunk("data: [DONE]\n\n")+"0\r\n\r\n")
	})
	r := runChat(t, nil, nil, t.TempDir(), "--url", p.url(), "--stream", "--timeout", "500ms")
	if r.code != 0 || r.stdout != "abcdef\n" || r.stderr != "" {
		t.Fatalf("exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	if r.took < 900*time.Millisecond {
		t.Errorf("took %v: the answer should have outlasted --timeout", r.took)
	}
}

func TestChatConnectionCut(t *testing.T) {
	t.Run("mid-stream", func(t *testing.T) {
		p := newRawProxy(t, func(c net.Conn, _ <-chan struct{}) {
			io.WriteString(c, sseHead+chunk(sseEvent("Hel")))
			// Return: the connection closes without the last chunk.
		})
		r := runChat(t, nil, nil, t.TempDir(), "--url", p.url(), "--stream")
		msg := r.failed(t, "ENGINE_NETWORK_ERROR")
		mustContain(t, msg, "the answer was cut", "broke in the middle", "the answer above is incomplete")
		if r.stdout != "Hel\n" {
			t.Errorf("stdout %q", r.stdout)
		}
	})
	t.Run("mid-body", func(t *testing.T) {
		p := newRawProxy(t, func(c net.Conn, _ <-chan struct{}) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"choices\":[")
		})
		r := runChat(t, nil, nil, t.TempDir(), "--url", p.url())
		mustContain(t, r.failed(t, "ENGINE_NETWORK_ERROR"), "the answer was cut", "unexpected EOF", "the answer is incomplete")
	})
	t.Run("stream ends without DONE", func(t *testing.T) {
		p := newRawProxy(t, func(c net.Conn, _ <-chan struct{}) {
			io.WriteString(c, sseHead+chunk(sseEvent("Hel"))+"0\r\n\r\n")
		})
		r := runChat(t, nil, nil, t.TempDir(), "--url", p.url(), "--stream")
		mustContain(t, r.failed(t, "ENGINE_NETWORK_ERROR"), "the answer was cut", "[DONE]")
	})
	t.Run("before the answer", func(t *testing.T) {
		// Something accepted the request, then hung up: not "no proxy".
		p := newRawProxy(t, func(c net.Conn, _ <-chan struct{}) {})
		r := runChat(t, nil, nil, t.TempDir(), "--url", p.url())
		mustContain(t, r.failed(t, "ENGINE_NETWORK_ERROR"), "closed the connection without answering")
	})
}

func TestChatInterrupted(t *testing.T) {
	t.Run("mid-stream", func(t *testing.T) {
		p := newRawProxy(t, func(c net.Conn, done <-chan struct{}) {
			io.WriteString(c, sseHead+chunk(sseEvent("Hel")))
			<-done
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out := newSyncBuffer()
		go func() {
			<-out.ready // the user saw the first words, then pressed Ctrl-C
			cancel()
		}()
		r := runChat(t, ctx, out, t.TempDir(), "--url", p.url(), "--stream")
		if r.code != exitInterrupted {
			t.Errorf("exit %d, want %d", r.code, exitInterrupted)
		}
		if r.stderr != "flm chat: interrupted; the answer is incomplete\n" {
			t.Errorf("stderr %q: want only the interrupted note, no error code", r.stderr)
		}
		if r.stdout != "Hel\n" {
			t.Errorf("stdout %q", r.stdout)
		}
		if r.took > 5*time.Second {
			t.Errorf("took %v to stop", r.took)
		}
	})
	t.Run("before the answer", func(t *testing.T) {
		p := newRawProxy(t, func(c net.Conn, done <-chan struct{}) { <-done })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-p.accepted
			cancel()
		}()
		r := runChat(t, ctx, nil, t.TempDir(), "--url", p.url())
		if r.code != exitInterrupted || r.stderr != "flm chat: interrupted before the proxy answered\n" || r.stdout != "" {
			t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
}

func TestChatTLS(t *testing.T) {
	answer := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"choices":[{"message":{"content":"hi there"},"finish_reason":"stop"}]}`)
	}
	t.Run("dev CA of the data dir", func(t *testing.T) {
		dir := t.TempDir()
		f, err := devtls.Ensure(filepath.Join(dir, "certs"), devtls.Hosts("127.0.0.1"), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := devtls.ServerTLSConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(http.HandlerFunc(answer))
		srv.TLS = cfg
		srv.StartTLS()
		defer srv.Close()
		r := runChat(t, nil, nil, dir, "--url", srv.URL)
		if r.code != 0 || r.stdout != "hi there\n" {
			t.Fatalf("exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("certificate from another CA", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(answer))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
		srv.StartTLS()
		defer srv.Close()
		msg := runChat(t, nil, nil, t.TempDir(), "--url", srv.URL).failed(t, "PROXY_CERT_FAILED")
		mustContain(t, msg, "TLS with the proxy at "+srv.URL+" failed", "not signed by a CA this machine trusts")
	})
	t.Run("https to a plain HTTP server", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(answer))
		defer srv.Close()
		url := strings.Replace(srv.URL, "http://", "https://", 1)
		msg := runChat(t, nil, nil, t.TempDir(), "--url", url).failed(t, "PROXY_CERT_FAILED")
		mustContain(t, msg, "does not speak TLS")
	})
}

func TestChatTimeoutFlagValidated(t *testing.T) {
	r := runChat(t, nil, nil, t.TempDir(), "--url", "http://127.0.0.1:9", "--timeout", "0s")
	mustContain(t, r.failed(t, "INVALID_ARGUMENT"), "--timeout must be positive")
}
