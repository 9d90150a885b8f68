package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/unjuno/flm/core/engine"
)

// Route is one of the OpenAI endpoints the proxy serves.
type Route int

// The routes.
const (
	Chat Route = iota + 1
	Completions
	Embeddings
)

// Path is the route's path, the same on FLM and on every engine.
func (r Route) Path() string {
	switch r {
	case Chat:
		return "/v1/chat/completions"
	case Completions:
		return "/v1/completions"
	case Embeddings:
		return "/v1/embeddings"
	}
	return ""
}

// Request is a parsed, validated client request.
type Request struct {
	Route  Route
	Model  string
	Stream bool
	body   []byte
	fields []member
}

func (r *Request) field(name string) ([]byte, bool) {
	for _, m := range r.fields {
		if m.key == name {
			return r.body[m.vStart:m.vEnd], true
		}
	}
	return nil, false
}

// ParseRequest validates an OpenAI request body for route: one UTF-8 JSON
// object without duplicate keys, with a string "model", the route's
// required input ("messages" with a role per message, "prompt", "input")
// and well-typed "stream" and "n". Other fields are not looked at.
func ParseRequest(route Route, body []byte) (*Request, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalid("", "the request body is empty; send a JSON object")
	}
	if !utf8.Valid(body) {
		return nil, invalid("", "the request body is not valid UTF-8")
	}
	if !json.Valid(body) {
		var v json.RawMessage
		return nil, invalid("", "the request body is not valid JSON: %s", jsonErr(json.Unmarshal(body, &v)))
	}
	fields, err := members(body, 0, make([]member, 0, 8))
	if err != nil {
		return nil, invalid("", "the request body must be a JSON object")
	}
	if dup := duplicate(fields); dup != "" {
		return nil, invalid(dup, "the key %s appears twice", quote(dup))
	}
	r := &Request{Route: route, body: body, fields: fields}
	raw, ok := r.field("model")
	if !ok || isNull(raw) {
		return nil, invalid("model", `"model" is required`)
	}
	if r.Model, ok = stringValue(raw); !ok || r.Model == "" {
		return nil, invalid("model", `"model" must be a non-empty string`)
	}
	if raw, ok := r.field("stream"); ok && !isNull(raw) {
		switch string(raw) {
		case "true":
			r.Stream = true
		case "false":
		default:
			return nil, invalid("stream", `"stream" must be true or false`)
		}
	}
	if raw, ok := r.field("n"); ok && !isNull(raw) {
		var n int
		if json.Unmarshal(raw, &n) != nil || n < 1 || n > 128 {
			return nil, invalid("n", `"n" must be an integer between 1 and 128`)
		}
	}
	switch route {
	case Chat:
		if err := r.checkMessages(); err != nil {
			return nil, err
		}
	case Completions:
		if raw, ok := r.field("prompt"); !ok || !(raw[0] == '"' || raw[0] == '[') {
			return nil, invalid("prompt", `"prompt" must be a string or an array`)
		}
	case Embeddings:
		raw, ok := r.field("input")
		if !ok || !(raw[0] == '"' || raw[0] == '[' && len(elements(raw, 0, nil)) > 0) {
			return nil, invalid("input", `"input" must be a string or a non-empty array`)
		}
		if r.Stream {
			return nil, invalid("stream", "embeddings cannot stream")
		}
	}
	return r, nil
}

// checkMessages: a non-empty array of objects, each with a "role" string.
func (r *Request) checkMessages() error {
	raw, ok := r.field("messages")
	if !ok || raw[0] != '[' {
		return invalid("messages", `"messages" must be a non-empty array of message objects`)
	}
	els := elements(raw, 0, make([][2]int, 0, 8))
	if len(els) == 0 {
		return invalid("messages", `"messages" must be a non-empty array of message objects`)
	}
	var ms []member
	for i, el := range els {
		ms, _ = members(raw[el[0]:el[1]], 0, ms[:0])
		role := ""
		for _, m := range ms {
			if m.key == "role" {
				role, _ = stringValue(raw[el[0]+m.vStart : el[0]+m.vEnd])
			}
		}
		if role == "" {
			return invalid(fmt.Sprintf("messages[%d].role", i), `every message needs a "role" string`)
		}
	}
	return nil
}

func isNull(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }

func jsonErr(err error) string {
	if err == nil {
		return "got null"
	}
	s := err.Error()
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return s
}

// Rewrite returns the body to send to t's engine (PROXY_SPEC.md, per-engine
// rules). Every member is copied as the client wrote it, except:
//
//   - "model" becomes the engine's own model name;
//   - streams ask for usage (stream_options.include_usage) unless the
//     client set include_usage itself, so every stream ends with a usage
//     chunk; "stream_options" without "stream" is dropped (vLLM refuses
//     it);
//   - "n" > 1 is refused with unsupported_parameter except on vLLM: the
//     others would silently return one choice.
func (r *Request) Rewrite(t Target) ([]byte, error) {
	if raw, ok := r.field("n"); ok && !isNull(raw) && string(raw) != "1" && t.Endpoint.Kind != engine.VLLM {
		return nil, &Error{Kind: Unsupported, Param: "n", Code: "unsupported_parameter",
			Message: fmt.Sprintf(`%s does not support "n" > 1; send one request per choice`, engine.DisplayName(t.Endpoint.Kind))}
	}
	wantUsage := r.Stream && r.Route != Embeddings
	out := make([]byte, 0, len(r.body)+64)
	out = append(out, '{')
	sep := func() {
		if len(out) > 1 {
			out = append(out, ',')
		}
	}
	model, _ := json.Marshal(t.Model)
	hadOptions := false
	for _, m := range r.fields {
		key, val := r.body[m.keyStart:m.keyEnd], r.body[m.vStart:m.vEnd]
		switch m.key {
		case "model":
			val = model
		case "stream_options":
			if !wantUsage {
				continue
			}
			merged, err := withUsage(val)
			if err != nil {
				return nil, err
			}
			val, hadOptions = merged, true
		}
		sep()
		out = append(out, key...)
		out = append(out, ':')
		out = append(out, val...)
	}
	if wantUsage && !hadOptions {
		sep()
		out = append(out, `"stream_options":{"include_usage":true}`...)
	}
	return append(out, '}'), nil
}

// withUsage returns stream_options with include_usage true added, unless
// the client set include_usage itself (either way: its choice stands).
func withUsage(raw []byte) ([]byte, error) {
	if isNull(raw) {
		return []byte(`{"include_usage":true}`), nil
	}
	ms, err := members(raw, 0, nil)
	if err != nil {
		return nil, invalid("stream_options", `"stream_options" must be an object`)
	}
	for _, m := range ms {
		if m.key == "include_usage" {
			return raw, nil
		}
	}
	out := append([]byte{}, raw[:len(raw)-1]...) // drop the closing '}'
	if len(ms) > 0 {
		out = append(out, ',')
	}
	return append(out, `"include_usage":true}`...), nil
}

// WantsUsage reports whether the stream's client accepts a usage chunk:
// always, unless it set stream_options.include_usage to false.
func (r *Request) WantsUsage() bool {
	if !r.Stream || r.Route == Embeddings {
		return false
	}
	raw, ok := r.field("stream_options")
	if !ok || isNull(raw) {
		return true
	}
	ms, _ := members(raw, 0, nil)
	for _, m := range ms {
		if m.key == "include_usage" {
			return string(raw[m.vStart:m.vEnd]) != "false"
		}
	}
	return true
}
