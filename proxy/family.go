package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/translate"
	"github.com/unjuno/flm/core/translate/anthropic"
	"github.com/unjuno/flm/core/translate/ollamaapi"
)

// family is the API family a path belongs to: it decides the shape of
// every error the route answers, middleware refusals included.
type family uint8

const (
	familyOpenAI    family = iota // OpenAI's envelope (Chat Completions, Responses …)
	familyAnthropic               // Anthropic's {"type":"error","error":{…}}
	familyOllama                  // Ollama's {"error":"…"}
)

// familyOf is the family of a request path: Anthropic's /v1/messages*,
// Ollama's /api/*, OpenAI's everywhere else (the Responses API uses
// OpenAI's envelope too). Only called on the error path.
func familyOf(path string) family {
	switch {
	case path == "/v1/messages" || strings.HasPrefix(path, "/v1/messages/"):
		return familyAnthropic
	case path == "/api" || strings.HasPrefix(path, "/api/"):
		return familyOllama
	}
	return familyOpenAI
}

// familyBody renders e in the family's error shape. Anthropic's error type
// follows the status (anthropic.ErrorType), as its SDKs pick their
// exception classes by status; Ollama's shape has only the message.
func (e *apiError) familyBody(f family, requestID string) []byte {
	switch f {
	case familyAnthropic:
		return anthropic.ErrorBody(e.Status, e.Message, requestID)
	case familyOllama:
		return ollamaapi.ErrorBody(e.Message)
	}
	return e.body(requestID)
}

// readFamilyBody reads a request body, as forwardRoute does.
func readFamilyBody(c *echo.Context, limit int64) ([]byte, error) {
	body, err := readBody(c.Request())
	if err != nil {
		if isTooLarge(err) {
			return nil, tooLarge(limit)
		}
		return nil, newError(http.StatusBadRequest, typeInvalid, "invalid_body", "could not read the request body")
	}
	return body, nil
}

// familyCall is one request of a non-OpenAI API family, parsed by its
// translate package, and how to answer it.
type familyCall struct {
	model  string // as the client named it
	stream bool
	// native reports whether the engine answers the family itself
	// (a habit); the request then goes to nativePath as the client wrote
	// it, "model" rewritten, and the answer comes back as it is.
	native     func(engine.Habits) bool
	nativePath string
	nativeSSE  *nativeSSE
	// Otherwise the request is translated to Chat Completions.
	chatBody  func(translate.Target) ([]byte, error)
	answer    func(body []byte, env translate.Env) ([]byte, error)
	newStream func(env translate.Env) translate.Stream
}

// serveFamily routes a family request, checks the key's scope and passes
// it through to an engine that speaks the family, or translates it.
func (s *Server) serveFamily(c *echo.Context, body []byte, fc familyCall) error {
	t, err := s.resolve(c.Request().Context(), fc.model)
	if err != nil {
		return fromGateway(err)
	}
	if err := s.checkScope(c, keyRecord(c), t.ID); err != nil {
		return err
	}
	if fc.native(t.Habits) {
		out, err := passthroughBody(body, t.Model)
		if err != nil {
			return fromTranslate(err)
		}
		r, resp, err := s.open(c, fc.nativePath, fc.stream, t, out)
		if r == nil {
			return err
		}
		defer r.close(resp)
		if fc.stream && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			return r.relaySSE(resp.Body, true, fc.nativeSSE)
		}
		return r.copyBody(resp)
	}
	m, _ := s.catalogModel(t.ID) // a model gone since it was resolved has no capabilities
	chat, err := fc.chatBody(translate.Target{Model: t.Model, Caps: m.Capabilities})
	if err != nil {
		return fromTranslate(err)
	}
	return s.relayTranslated(c, t, translated{
		path: translate.ChatPath, body: chat, stream: fc.stream,
		answer:     func(b []byte) ([]byte, error) { return fc.answer(b, translate.Env{}) },
		answerType: "application/json",
		newStream:  func() translate.Stream { return fc.newStream(translate.Env{}) },
		streamType: "text/event-stream",
		// An engine that answers a streamed request whole (none does
		// today) gets the family's error event, not a body the client's
		// stream reader cannot parse.
		wholeAsStream: func([]byte) []byte {
			return fc.newStream(translate.Env{}).Fail(nil, http.StatusBadGateway, "the engine answered a streamed request without an event stream")
		},
	})
}

// passthroughBody is the client's body for an engine that speaks the
// family natively: every top-level member as the client wrote it, "model"
// set to the engine's own name. A duplicate key, or a key that differs
// from "model" or "stream" only in case, is refused: an engine decoding
// JSON the way Go does (Ollama) would read the last duplicate, or the
// case variant, and serve another model than the one FLM routed and the
// key's scope allowed (see gateway.foldsTo).
func passthroughBody(body []byte, model string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, translate.Invalid("", "the request body must be a JSON object")
	}
	out := make([]byte, 0, len(body)+len(model)+16)
	out = append(out, '{')
	seen := make(map[string]bool, 16)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, translate.Invalid("", "the request body is not valid JSON")
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, translate.Invalid("", "the request body is not valid JSON")
		}
		if seen[key] {
			return nil, translate.Invalid(key, "the key %s appears twice", translate.Quote(key))
		}
		seen[key] = true
		for _, name := range [...]string{"model", "stream"} {
			if key != name && strings.EqualFold(key, name) {
				return nil, translate.Invalid(key, "the key %s differs from %q only in case, and engines that ignore case would read it; spell it exactly %q", translate.Quote(key), name, name)
			}
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = translate.AppendString(out, key)
		out = append(out, ':')
		if key == "model" {
			out = translate.AppendString(out, model)
			continue
		}
		out = append(out, val...)
	}
	if _, err := dec.Token(); err != nil {
		return nil, translate.Invalid("", "the request body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, translate.Invalid("", "the request body must be one JSON object")
	}
	return append(out, '}'), nil
}

// nativeSSE adapts relaySSE to an event stream of another family that an
// engine speaks natively: the events that end it, and the error event a
// stream that breaks before one of them ends with (OpenAI's error chunk
// and [DONE] mean nothing to these clients).
type nativeSSE struct {
	ends []string // event names ("event:" field) that end the stream
	// fail renders the error event; events is how many events were
	// relayed before it (the Responses API numbers its events).
	fail func(reason string, events int64) []byte
}

// last reports whether ev ends the stream.
func (n *nativeSSE) last(ev []byte) bool {
	name := eventName(ev)
	return name != "" && slices.Contains(n.ends, name)
}

// eventName is the value of an SSE event's "event:" field.
func eventName(ev []byte) string {
	for len(ev) > 0 {
		i := bytes.IndexAny(ev, "\r\n")
		line := ev
		if i >= 0 {
			line, ev = ev[:i], ev[i+1:]
		} else {
			ev = nil
		}
		if v, ok := bytes.CutPrefix(line, []byte("event:")); ok {
			return string(bytes.TrimPrefix(v, space))
		}
	}
	return ""
}
