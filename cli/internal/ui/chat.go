package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/unjuno/flm/core/flmerr"
)

// apiChat is the chat tester: one streamed chat turn through a running
// proxy of this data dir, with the key the page holds. The answer's SSE is
// passed to the page as it comes, so the page measures time to first
// token and tokens per second as any client would see them.
//
// The proxy is named by handle id, never by URL: the UI only ever sends a
// key to a proxy it started (loopback), not to an address a page chose.
func (s *Server) apiChat(w http.ResponseWriter, r *http.Request) {
	var in struct {
		HandleID string `json:"handle_id"`
		Model    string `json:"model"`
		Prompt   string `json:"prompt"`
		APIKey   string `json:"api_key"`
	}
	if !decode(w, r, &in) {
		return
	}
	switch {
	case strings.TrimSpace(in.Model) == "":
		writeFieldError(w, http.StatusBadRequest, flmerr.New(flmerr.InvalidArgument, "choose a model"), "model")
		return
	case strings.TrimSpace(in.Prompt) == "":
		writeFieldError(w, http.StatusBadRequest, flmerr.New(flmerr.InvalidArgument, "the prompt is empty"), "prompt")
		return
	case strings.TrimSpace(in.APIKey) == "":
		writeFieldError(w, http.StatusBadRequest, flmerr.New(flmerr.InvalidArgument, "an API key is needed (create one on the API keys screen)"), "api_key")
		return
	}
	hs, err := s.svc.Proxies.Status(r.Context())
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	base := ""
	for _, h := range hs {
		if h.Running && (in.HandleID == "" || h.ID == in.HandleID) {
			base = h.URLs.Local
			break
		}
	}
	if base == "" || !loopbackHost(base) {
		writeFieldError(w, http.StatusNotFound, flmerr.Wrap(errNoProxy, flmerr.ProxyNotRunning, "no running FLM proxy %q; start one on the Proxies screen", in.HandleID), "handle_id")
		return
	}
	body, _ := json.Marshal(map[string]any{
		"model": in.Model, "stream": true, "stream_options": map[string]bool{"include_usage": true},
		"messages": []map[string]string{{"role": "user", "content": in.Prompt}},
	})
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, strings.TrimRight(base, "/")+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		writeError(w, http.StatusInternalServerError, flmerr.Wrap(err, flmerr.Internal, "chat request"))
		return
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(in.APIKey))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := s.svc.ChatClient(base).Do(req)
	if err != nil {
		writeError(w, http.StatusBadGateway, flmerr.New(flmerr.ProxyNotRunning, "the proxy at %s does not answer", base))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		writeError(w, http.StatusBadGateway, proxyFailure(resp))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	buf := make([]byte, 16<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the page went away; its context cancels the proxy's request
			}
			_ = rc.Flush()
		}
		if err != nil {
			if err != io.EOF {
				_, _ = fmt.Fprintf(w, "data: %s\n\n", jsonString(map[string]any{"error": map[string]string{"message": "the connection to the proxy broke: the answer is incomplete"}}))
				_ = rc.Flush()
			}
			return
		}
	}
}

// proxyFailure reads the proxy's error envelope (OpenAI's shape).
func proxyFailure(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return flmerr.ProxyAnswer(resp.StatusCode, b)
}
