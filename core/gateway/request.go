package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
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
	// n is the client's "n" (0 when absent or null).
	n int
	// includeUsage: stream_options.include_usage is true.
	includeUsage bool
}

func (r *Request) field(name string) ([]byte, bool) {
	for _, m := range r.fields {
		if m.key == name {
			return r.body[m.vStart:m.vEnd], true
		}
	}
	return nil, false
}

// routedKeys are the top-level members FLM reads; ParseRequest refuses
// their case variants (see foldsTo).
var routedKeys = []string{"model", "stream", "stream_options", "n", "messages", "prompt", "input"}

// foldsTo returns the name among names that key matches the way Go's
// encoding/json matches object keys to struct fields, when key is not
// byte-for-byte that name; "" otherwise. encoding/json falls back to a
// case-insensitive match with Unicode simple folding: "MODEL" and "Model"
// are "model", and since the long s U+017F folds to s and the Kelvin sign
// U+212A to k, "ſtream" is "stream".
//
// Why: an engine written in Go (Ollama) decodes requests with
// encoding/json, so {"model":"a","MODEL":"b"} is routed by FLM to a's
// engine, and the engine serves b. Refusing such keys keeps FLM's view of
// the fields it routes and authorises on identical to the engine's.
func foldsTo(key string, names []string) string {
	for _, n := range names {
		// An ASCII first byte folds only to its own case pair, and every
		// name starts with a lower-case ASCII letter: a cheap filter that
		// keeps the common keys (temperature, max_tokens …) off EqualFold.
		if key != "" && key[0] < utf8.RuneSelf && key[0]|0x20 != n[0] {
			continue
		}
		if key != n && strings.EqualFold(key, n) {
			return n
		}
	}
	return ""
}

func caseVariant(param, key, name string) *Error {
	return invalid(param, "the key %s differs from %s only in case, and engines that ignore case would read it; spell it exactly %s",
		quote(key), quote(name), quote(name))
}

// ParseRequest validates an OpenAI request body for route: one UTF-8 JSON
// object without duplicate keys, with a string "model", the route's
// required input ("messages" with a role per message, "prompt", "input")
// and well-typed "stream", "n" and "stream_options". Keys that differ
// from one of those only in case are refused (see foldsTo). Other fields
// are not looked at.
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
	for _, m := range fields {
		if name := foldsTo(m.key, routedKeys); name != "" {
			return nil, caseVariant(m.key, m.key, name)
		}
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
		if json.Unmarshal(raw, &r.n) != nil || r.n < 1 || r.n > 128 {
			return nil, invalid("n", `"n" must be an integer between 1 and 128`)
		}
	}
	if err := r.checkStreamOptions(); err != nil {
		return nil, err
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
		role, roles := "", 0
		for _, m := range ms {
			if m.key == "role" {
				role, _ = stringValue(raw[el[0]+m.vStart : el[0]+m.vEnd])
				roles++
			} else if name := foldsTo(m.key, messageKeys); name != "" {
				return caseVariant(fmt.Sprintf("messages[%d].%s", i, m.key), m.key, name)
			}
		}
		if roles > 1 {
			return invalid(fmt.Sprintf("messages[%d].role", i), `the key "role" appears twice`)
		}
		if role == "" {
			return invalid(fmt.Sprintf("messages[%d].role", i), `every message needs a "role" string`)
		}
	}
	return nil
}

// messageKeys are the members of a message FLM reads.
var messageKeys = []string{"role"}

// streamOptionKeys are the members of stream_options FLM reads.
var streamOptionKeys = []string{"include_usage"}

// checkStreamOptions: null, or an object whose include_usage, if set, is
// a boolean or null. It is checked even when the request does not stream
// (and stream_options is then dropped): a malformed request is refused
// whatever FLM forwards of it.
func (r *Request) checkStreamOptions() error {
	raw, ok := r.field("stream_options")
	if !ok || isNull(raw) {
		return nil
	}
	ms, err := members(raw, 0, nil)
	if err != nil {
		return invalid("stream_options", `"stream_options" must be an object`)
	}
	seen := false
	for _, m := range ms {
		if name := foldsTo(m.key, streamOptionKeys); name != "" {
			return caseVariant("stream_options."+m.key, m.key, name)
		}
		if m.key != "include_usage" {
			continue
		}
		if seen {
			return invalid("stream_options.include_usage", `the key "include_usage" appears twice`)
		}
		seen = true
		switch string(raw[m.vStart:m.vEnd]) {
		case "true":
			r.includeUsage = true
		case "false", "null":
		default:
			return invalid("stream_options.include_usage", `"stream_options.include_usage" must be true or false`)
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
//   - "stream_options" is dropped unless "stream" is true (vLLM refuses it
//     on a request that does not stream); FLM never adds include_usage:
//     a stream ends with a usage chunk only when its client asked;
//   - "n" > 1 is refused with unsupported_parameter unless the engine
//     declares Habits.MultipleChoices: the others would silently return
//     one choice.
func (r *Request) Rewrite(t Target) ([]byte, error) {
	if r.n > 1 && !t.Habits.MultipleChoices {
		return nil, &Error{Kind: Unsupported, Param: "n", Code: "unsupported_parameter",
			Message: fmt.Sprintf(`%s does not support "n" > 1; send one request per choice`, engine.DisplayName(t.Endpoint.Kind))}
	}
	out := make([]byte, 0, len(r.body)+16)
	out = append(out, '{')
	model, _ := json.Marshal(t.Model)
	for _, m := range r.fields {
		val := r.body[m.vStart:m.vEnd]
		switch m.key {
		case "model":
			val = model
		case "stream_options":
			if !r.Stream {
				continue
			}
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, r.body[m.keyStart:m.keyEnd]...)
		out = append(out, ':')
		out = append(out, val...)
	}
	return append(out, '}'), nil
}

// WantsUsage reports whether the client asked for a usage chunk at the end
// of its stream: stream_options.include_usage set to true on a streaming
// chat or completions request (OpenAI's rule; PRODUCT.md §6).
func (r *Request) WantsUsage() bool {
	return r.Stream && r.Route != Embeddings && r.includeUsage
}
