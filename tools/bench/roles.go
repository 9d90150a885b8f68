package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/unjuno/flm/tools/enginefake"
)

// runRole runs the bench binary as one of its helper processes: each
// measured component has its own process and Go runtime, as in real use.
func runRole(role, listen, target string) error {
	var h http.Handler
	switch role {
	case "mock":
		h = fastMock()
	case "vllm-mock":
		h = fastVLLM()
	case "bare":
		u, err := url.Parse(target)
		if err != nil {
			return err
		}
		h = bareProxy(u)
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	srv := &http.Server{Addr: listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	go func() { _ = srv.Serve(ln) }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return srv.Close()
}

// bareProxy is the floor of what a net/http reverse proxy costs: the
// standard library's ReverseProxy with a tuned transport, no security
// chain, no JSON parsing.
func bareProxy(target *url.URL) http.Handler {
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	rp.FlushInterval = -1 // flush every write, as FLM does for SSE
	return rp
}

// fastMock is an Ollama reduced to precomputed captured answers: enough
// for FLM to fingerprint it (/api/version, /api/tags, /api/show) and to
// serve chat and embeddings, at as little cost as possible, so the
// proxies' own cost shows.
func fastMock() http.Handler {
	bodies := map[string][]byte{}
	for path, fixture := range map[string]string{
		"/api/version":         "ollama/api_version.http",
		"/api/tags":            "ollama/api_tags.http",
		"/api/show":            "ollama/api_show.http",
		"/v1/chat/completions": "ollama/v1_chat_completions.http",
		"/v1/embeddings":       "ollama/v1_embeddings.http",
		"/v1/models":           "ollama/v1_models.http",
	} {
		fx, err := enginefake.LoadFixture(fixture)
		if err != nil {
			panic(err)
		}
		bodies[path] = bytes.Clone(fx.Response.Body)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		b, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(b)
	})
}

// fastVLLM is a vLLM reduced to precomputed captured answers, for the
// families scenario: vLLM declares neither NativeMessages nor
// NativeResponses, so FLM translates every API family to its Chat
// Completions, and the Anthropic or Responses path a passthrough would
// take answers 404 here. A streamed chat is the captured stream sent
// unpaced, flushed event by event, its usage chunk only when asked for,
// as vLLM does.
func fastVLLM() http.Handler {
	bodies := map[string][]byte{}
	for path, fixture := range map[string]string{
		"/version":             "vllm/version.http",
		"/health":              "vllm/health_ok.http",
		"/v1/models":           "vllm/v1_models.http",
		"/v1/chat/completions": "vllm/v1_chat_completions.http",
	} {
		fx, err := enginefake.LoadFixture(fixture)
		if err != nil {
			panic(err)
		}
		bodies[path] = bytes.Clone(fx.Response.Body)
	}
	fx, err := enginefake.LoadFixture("vllm/v1_chat_completions_stream.http")
	if err != nil {
		panic(err)
	}
	var events, usage [][]byte
	for _, ev := range bytes.SplitAfter(fx.Response.Body, []byte("\n\n")) {
		if len(bytes.TrimSpace(ev)) == 0 {
			continue
		}
		if bytes.Contains(ev, []byte(`"choices":[]`)) {
			usage = append(usage, ev)
			continue
		}
		events = append(events, ev)
	}
	if len(events) < 2 || len(usage) != 1 || !bytes.HasPrefix(events[len(events)-1], []byte("data: [DONE]")) {
		panic("vllm stream fixture: expected chunks, one usage chunk and [DONE]")
	}
	withUsage := slices.Concat(events[:len(events)-1], usage, events[len(events)-1:])
	stream, includeUsage := []byte(`"stream":true`), []byte(`"include_usage":true`)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/chat/completions" && bytes.Contains(body, stream) {
			evs := events
			if bytes.Contains(body, includeUsage) {
				evs = withUsage
			}
			w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
			f, _ := w.(http.Flusher)
			for _, ev := range evs {
				_, _ = w.Write(ev)
				if f != nil {
					f.Flush()
				}
			}
			return
		}
		b, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if len(b) > 0 {
			w.Header().Set("Content-Type", "application/json")
		}
		_, _ = w.Write(b)
	})
}
