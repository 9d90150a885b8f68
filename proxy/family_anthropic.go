package proxy

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/translate"
	"github.com/unjuno/flm/core/translate/anthropic"
)

// Anthropic's Messages API (PROXY_SPEC.md, API families). Clients
// authenticate with x-api-key or a Bearer header (requireKey reads both);
// anthropic-version and anthropic-beta are accepted whatever their value
// and not forwarded: FLM answers one version of the API, and engines ignore
// them.

// anthropicNative ends a native Messages stream: message_stop, or the
// engine's own error event. A stream cut before gets Anthropic's error
// event.
var anthropicNative = &nativeSSE{
	ends: []string{"message_stop", "error"},
	fail: func(reason string, _ int64) []byte {
		ev := append([]byte("event: error\ndata: "), anthropic.ErrorBody(http.StatusBadGateway, reason, "")...)
		return append(ev, "\n\n"...)
	},
}

// messages answers POST /v1/messages: passed through to an engine that
// declares Habits.NativeMessages, translated to Chat Completions for the
// others.
func (s *Server) messages(c *echo.Context) error {
	body, err := readFamilyBody(c, s.opts.BodyLimit)
	if err != nil {
		return err
	}
	req, err := anthropic.ParseRequest(body)
	if err != nil {
		return fromTranslate(err)
	}
	return s.serveFamily(c, body, familyCall{
		model:      req.Model,
		stream:     req.Stream,
		native:     func(h engine.Habits) bool { return h.NativeMessages },
		nativePath: "/v1/messages",
		nativeSSE:  anthropicNative,
		chatBody:   req.ChatBody,
		answer:     req.Message,
		newStream:  func(env translate.Env) translate.Stream { return req.NewStream(env) },
	})
}

// countTokens answers POST /v1/messages/count_tokens. Counting needs the
// engine's chat template and tokenizer, so only an engine that counts
// Anthropic requests itself can answer (llama-server); the others get 404
// not_found_error, which the SDKs raise as NotFoundError.
func (s *Server) countTokens(c *echo.Context) error {
	body, err := readFamilyBody(c, s.opts.BodyLimit)
	if err != nil {
		return err
	}
	req, err := anthropic.ParseRequest(body)
	if err != nil {
		return fromTranslate(err)
	}
	t, err := s.resolve(c.Request().Context(), req.Model)
	if err != nil {
		return fromGateway(err)
	}
	if err := s.checkScope(c, keyRecord(c), t.ID); err != nil {
		return err
	}
	if !t.Habits.NativeMessages {
		return fromTranslate(anthropic.CountTokensUnsupported())
	}
	out, err := passthroughBody(body, t.Model)
	if err != nil {
		return fromTranslate(err)
	}
	r, resp, err := s.open(c, "/v1/messages/count_tokens", false, t, out)
	if r == nil {
		// An engine that speaks Messages but does not count (Ollama)
		// answers 404 for the path.
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return fromTranslate(anthropic.CountTokensUnsupported())
		}
		return err
	}
	defer r.close(resp)
	return r.copyBody(resp)
}
