package anthropic

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/unjuno/flm/core/translate"
)

// stopReason maps an engine's finish_reason (and vLLM's stop_reason) to
// Anthropic's stop_reason and stop_sequence.
func (r *Request) stopReason(finish string, stop json.RawMessage, calledTools bool) (string, *string) {
	switch finish {
	case "length":
		return "max_tokens", nil
	case "tool_calls", "function_call":
		return "tool_use", nil
	case "content_filter":
		return "refusal", nil
	}
	if calledTools {
		return "tool_use", nil // some engines say "stop" after a tool call
	}
	if s, ok := translate.StopString(stop); ok && slices.Contains(r.w.StopSequences, s) {
		return "stop_sequence", &s
	}
	return "end_turn", nil
}

// appendUsage writes Anthropic's usage object from the engine's usage.
// Anthropic counts cached prompt tokens apart from input_tokens.
func appendUsage(dst []byte, u *translate.Usage) []byte {
	dst = append(dst, '{')
	var in, out, cached int64
	hasCached := false
	if u != nil {
		in, out = u.PromptTokens, u.CompletionTokens
		cached, hasCached = u.CachedTokens()
		in = max(in-cached, 0)
	}
	dst = translate.AppendKey(dst, "input_tokens")
	dst = translate.AppendInt(dst, in)
	if hasCached {
		dst = translate.AppendKey(dst, "cache_read_input_tokens")
		dst = translate.AppendInt(dst, cached)
	}
	dst = translate.AppendKey(dst, "output_tokens")
	dst = translate.AppendInt(dst, out)
	return append(dst, '}')
}

// Message turns the engine's non-streamed Chat Completions answer into an
// Anthropic message.
func (r *Request) Message(body []byte, env translate.Env) ([]byte, error) {
	resp, err := translate.DecodeResponse(body)
	if err != nil {
		return nil, err
	}
	ch := &resp.Choices[0]
	dst := make([]byte, 0, 256+len(body))
	dst = append(dst, `{"id":`...)
	dst = translate.AppendString(dst, env.ID("msg_"))
	dst = append(dst, `,"type":"message","role":"assistant","model":`...)
	dst = translate.AppendString(dst, r.Model)
	dst = append(dst, `,"content":[`...)
	n := 0
	if th := ch.Message.Thinking(); th != "" && r.Thinking {
		dst = append(dst, `{"type":"thinking","thinking":`...)
		dst = translate.AppendString(dst, th)
		dst = append(dst, `,"signature":""}`...)
		n++
	}
	if c := ch.Message.Content; c != nil && *c != "" {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"type":"text","text":`...)
		dst = translate.AppendString(dst, *c)
		dst = append(dst, '}')
		n++
	}
	for _, tc := range ch.Message.ToolCalls {
		if tc.Function.Name == "" {
			return nil, translate.EngineError(errNoName)
		}
		input, ok := translate.CompactObject([]byte(tc.Function.Arguments))
		if tc.Function.Arguments == "" {
			input, ok = []byte("{}"), true
		}
		if !ok {
			return nil, translate.EngineError("the engine called the tool %s with arguments that are not a JSON object", translate.Quote(tc.Function.Name))
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		id := tc.ID
		if id == "" {
			id = env.ID("toolu_")
		}
		dst = append(dst, `{"type":"tool_use","id":`...)
		dst = translate.AppendString(dst, id)
		dst = append(dst, `,"name":`...)
		dst = translate.AppendString(dst, tc.Function.Name)
		dst = append(dst, `,"input":`...)
		dst = append(dst, input...)
		dst = append(dst, '}')
		n++
	}
	reason, seq := r.stopReason(ch.FinishReason, ch.StopReason, len(ch.Message.ToolCalls) > 0)
	dst = append(dst, `],"stop_reason":`...)
	dst = translate.AppendString(dst, reason)
	dst = append(dst, `,"stop_sequence":`...)
	dst = translate.AppendNullableString(dst, seq)
	dst = append(dst, `,"usage":`...)
	dst = appendUsage(dst, translate.RealUsage(resp.Usage))
	return append(dst, '}'), nil
}

// ErrorType is Anthropic's error type for an HTTP status.
func ErrorType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusServiceUnavailable, 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// ErrorBody is an error in Anthropic's shape:
// {"type":"error","error":{"type":…,"message":…},"request_id":…}. The
// request id is left out when empty.
func ErrorBody(status int, message, requestID string) []byte {
	dst := appendError(make([]byte, 0, 96+len(message)), status, message)
	if requestID != "" {
		dst = dst[:len(dst)-1]
		dst = append(dst, `,"request_id":`...)
		dst = translate.AppendString(dst, requestID)
		dst = append(dst, '}')
	}
	return dst
}

func appendError(dst []byte, status int, message string) []byte {
	dst = append(dst, `{"type":"error","error":{"type":`...)
	dst = translate.AppendString(dst, ErrorType(status))
	dst = append(dst, `,"message":`...)
	dst = translate.AppendString(dst, message)
	return append(dst, "}}"...)
}

// CountTokensUnsupported is the answer to POST /v1/messages/count_tokens
// for an engine that does not count Anthropic requests itself: counting
// would need the engine's chat template and tokenizer, a request of its
// own. (llama-server answers count_tokens natively.)
func CountTokensUnsupported() *translate.Error {
	return &translate.Error{Status: http.StatusNotFound, Code: "not_found", Message: "counting tokens is not available for this engine; only engines that answer /v1/messages/count_tokens themselves (llama.cpp) support it"}
}
