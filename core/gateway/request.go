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
	fields map[string]json.RawMessage
}

// ParseRequest validates an OpenAI request body for route: one UTF-8 JSON
// object with a string "model", the route's required input ("messages",
// "prompt", "input") and well-typed "stream" and "n".
func ParseRequest(route Route, body []byte) (*Request, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalid("", "the request body is empty; send a JSON object")
	}
	if !utf8.Valid(body) {
		return nil, invalid("", "the request body is not valid UTF-8")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, invalid("", "the request body is not a JSON object: %s", jsonErr(err))
	}
	r := &Request{Route: route, fields: fields}
	if err := str(fields, "model", &r.Model); err != nil {
		return nil, err
	}
	if raw, ok := fields["stream"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &r.Stream) != nil {
			return nil, invalid("stream", `"stream" must be true or false`)
		}
	}
	if raw, ok := fields["n"]; ok && !isNull(raw) {
		var n int
		if json.Unmarshal(raw, &n) != nil || n < 1 || n > 128 {
			return nil, invalid("n", `"n" must be an integer between 1 and 128`)
		}
	}
	switch route {
	case Chat:
		var msgs []map[string]json.RawMessage
		raw, ok := fields["messages"]
		if !ok || json.Unmarshal(raw, &msgs) != nil || len(msgs) == 0 {
			return nil, invalid("messages", `"messages" must be a non-empty array of message objects`)
		}
		for i, m := range msgs {
			var role string
			if m == nil || json.Unmarshal(m["role"], &role) != nil || role == "" {
				return nil, invalid(fmt.Sprintf("messages[%d].role", i), `every message needs a "role" string`)
			}
		}
	case Completions:
		if raw, ok := fields["prompt"]; !ok || isNull(raw) || !(raw[0] == '"' || raw[0] == '[') {
			return nil, invalid("prompt", `"prompt" must be a string or an array`)
		}
	case Embeddings:
		raw, ok := fields["input"]
		if !ok || isNull(raw) || !(raw[0] == '"' || raw[0] == '[') || string(raw) == "[]" {
			return nil, invalid("input", `"input" must be a string or a non-empty array`)
		}
		if r.Stream {
			return nil, invalid("stream", "embeddings cannot stream")
		}
	}
	return r, nil
}

func str(fields map[string]json.RawMessage, name string, dst *string) error {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		return invalid(name, "%q is required", name)
	}
	if json.Unmarshal(raw, dst) != nil || *dst == "" {
		return invalid(name, "%q must be a non-empty string", name)
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

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
// rules):
//
//   - "model" becomes the engine's own model name;
//   - streams ask for usage (stream_options.include_usage), so every
//     stream ends with a usage chunk; "stream_options" without "stream" is
//     dropped (vLLM refuses it);
//   - "n" > 1 is refused with unsupported_parameter except on vLLM: the
//     others would silently return one choice.
func (r *Request) Rewrite(t Target) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(r.fields)+1)
	for k, v := range r.fields {
		out[k] = v
	}
	model, _ := json.Marshal(t.Model)
	out["model"] = model
	if raw, ok := out["n"]; ok && !isNull(raw) && string(raw) != "1" && t.Endpoint.Kind != engine.VLLM {
		return nil, &Error{Kind: Unsupported, Param: "n", Code: "unsupported_parameter",
			Message: fmt.Sprintf(`%s does not support "n" > 1; send one request per choice`, engine.DisplayName(t.Endpoint.Kind))}
	}
	if r.Stream && r.Route != Embeddings {
		opts := map[string]json.RawMessage{}
		if raw, ok := out["stream_options"]; ok && !isNull(raw) {
			if json.Unmarshal(raw, &opts) != nil {
				return nil, invalid("stream_options", `"stream_options" must be an object`)
			}
		}
		opts["include_usage"] = json.RawMessage("true")
		out["stream_options"], _ = json.Marshal(opts)
	} else {
		delete(out, "stream_options")
	}
	return json.Marshal(out)
}
