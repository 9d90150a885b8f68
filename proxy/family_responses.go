package proxy

import (
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/translate"
	"github.com/unjuno/flm/core/translate/responses"
)

// OpenAI's Responses API, stateless subset (PROXY_SPEC.md, API families):
// FLM stores no responses, so previous_response_id, conversation and
// background requests are refused with 400 on every engine, also where the
// request is passed through.

// responsesNative ends a native Responses stream: its final lifecycle
// event, or the engine's own error event. A stream cut before gets the
// Responses error event, numbered after the events relayed.
var responsesNative = &nativeSSE{
	ends: []string{"response.completed", "response.incomplete", "response.failed", "error"},
	fail: func(reason string, events int64) []byte {
		return responses.ErrorEvent(nil, http.StatusBadGateway, reason, events)
	},
}

// responsesRoute answers POST /v1/responses: passed through to an engine
// that declares Habits.NativeResponses, translated to Chat Completions for
// the others.
func (s *Server) responsesRoute(c *echo.Context) error {
	body, err := readFamilyBody(c, s.opts.BodyLimit)
	if err != nil {
		return err
	}
	req, err := responses.ParseRequest(body)
	if err != nil {
		return fromTranslate(err)
	}
	return s.serveFamily(c, body, familyCall{
		model:      req.Model,
		stream:     req.Stream,
		native:     func(h engine.Habits) bool { return h.NativeResponses },
		nativePath: "/v1/responses",
		nativeSSE:  responsesNative,
		chatBody:   req.ChatBody,
		answer:     req.Response,
		newStream:  func(env translate.Env) translate.Stream { return req.NewStream(env) },
	})
}
