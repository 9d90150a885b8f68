package responses

import (
	"maps"
	"net/http"
	"slices"

	"github.com/unjuno/flm/core/translate"
)

type itemKind uint8

const (
	messageItem itemKind = iota + 1
	callItem
)

// item is one output item while it is built.
type item struct {
	kind   itemKind
	id     string
	text   []byte // message text or function arguments
	callID string
	name   string
	done   bool
}

// state is what a Response object says; the non-streamed answer and the
// stream's lifecycle events share it.
type state struct {
	id        string
	createdAt int64
	completed int64 // 0 while in progress
	status    string
	reason    string // incomplete_details.reason
	items     []item
	usage     *translate.Usage
}

func (st *state) finish(finish string, at int64) {
	st.completed = at
	switch finish {
	case "length":
		st.status, st.reason = "incomplete", "max_output_tokens"
	case "content_filter":
		st.status, st.reason = "incomplete", "content_filter"
	default:
		st.status = "completed"
	}
}

func (st *state) itemStatus() string {
	switch st.status {
	case "completed", "incomplete":
		return st.status
	}
	return "in_progress"
}

func appendItem(dst []byte, it *item, status string) []byte {
	switch it.kind {
	case messageItem:
		dst = append(dst, `{"id":`...)
		dst = translate.AppendString(dst, it.id)
		dst = append(dst, `,"type":"message","status":`...)
		dst = translate.AppendString(dst, status)
		dst = append(dst, `,"role":"assistant","content":[`...)
		if it.done || status != "in_progress" {
			dst = appendTextPart(dst, it.text)
		}
		return append(dst, "]}"...)
	default:
		dst = append(dst, `{"id":`...)
		dst = translate.AppendString(dst, it.id)
		dst = append(dst, `,"type":"function_call","status":`...)
		dst = translate.AppendString(dst, status)
		dst = append(dst, `,"call_id":`...)
		dst = translate.AppendString(dst, it.callID)
		dst = append(dst, `,"name":`...)
		dst = translate.AppendString(dst, it.name)
		dst = append(dst, `,"arguments":`...)
		if it.done || status != "in_progress" {
			dst = translate.AppendString(dst, string(it.text))
		} else {
			dst = append(dst, `""`...)
		}
		return append(dst, '}')
	}
}

func appendTextPart(dst []byte, text []byte) []byte {
	dst = append(dst, `{"type":"output_text","text":`...)
	dst = translate.AppendString(dst, string(text))
	return append(dst, `,"annotations":[],"logprobs":[]}`...)
}

func appendUsage(dst []byte, u *translate.Usage) []byte {
	if u == nil {
		return append(dst, "null"...)
	}
	cached, _ := u.CachedTokens()
	var reasoning int64
	if u.CompletionTokensDetails != nil {
		reasoning = u.CompletionTokensDetails.ReasoningTokens
	}
	total := u.TotalTokens
	if total == 0 {
		total = u.PromptTokens + u.CompletionTokens
	}
	dst = append(dst, `{"input_tokens":`...)
	dst = translate.AppendInt(dst, u.PromptTokens)
	dst = append(dst, `,"input_tokens_details":{"cached_tokens":`...)
	dst = translate.AppendInt(dst, cached)
	dst = append(dst, `},"output_tokens":`...)
	dst = translate.AppendInt(dst, u.CompletionTokens)
	dst = append(dst, `,"output_tokens_details":{"reasoning_tokens":`...)
	dst = translate.AppendInt(dst, reasoning)
	dst = append(dst, `},"total_tokens":`...)
	dst = translate.AppendInt(dst, total)
	return append(dst, '}')
}

func appendNullableInt(dst []byte, n *int64) []byte {
	if n == nil {
		return append(dst, "null"...)
	}
	return translate.AppendInt(dst, *n)
}

func appendNullableFloat(dst []byte, f *float64) []byte {
	if f == nil {
		return append(dst, "null"...)
	}
	return translate.AppendFloat(dst, *f)
}

// appendResponse writes the Response object: the state plus the request's
// settings echoed, as OpenAI's API returns them.
func (r *Request) appendResponse(dst []byte, st *state) []byte {
	w := &r.w
	dst = append(dst, `{"id":`...)
	dst = translate.AppendString(dst, st.id)
	dst = append(dst, `,"object":"response","created_at":`...)
	dst = translate.AppendInt(dst, st.createdAt)
	dst = append(dst, `,"status":`...)
	dst = translate.AppendString(dst, st.status)
	dst = append(dst, `,"completed_at":`...)
	if st.completed > 0 && st.status != "in_progress" {
		dst = translate.AppendInt(dst, st.completed)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"background":false,"error":null,"incomplete_details":`...)
	if st.reason != "" {
		dst = append(dst, `{"reason":`...)
		dst = translate.AppendString(dst, st.reason)
		dst = append(dst, '}')
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"instructions":`...)
	dst = translate.AppendNullableString(dst, w.Instructions)
	dst = append(dst, `,"max_output_tokens":`...)
	dst = appendNullableInt(dst, w.MaxOutputTokens)
	dst = append(dst, `,"max_tool_calls":`...)
	dst = appendNullableInt(dst, w.MaxToolCalls)
	dst = append(dst, `,"metadata":{`...)
	for i, k := range slices.Sorted(maps.Keys(w.Metadata)) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = translate.AppendString(dst, k)
		dst = append(dst, ':')
		dst = append(dst, w.Metadata[k]...) // a JSON string, checked by ParseRequest
	}
	dst = append(dst, `},"model":`...)
	dst = translate.AppendString(dst, r.Model)
	dst = append(dst, `,"output":[`...)
	status := st.itemStatus()
	for i := range st.items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendItem(dst, &st.items[i], status)
	}
	dst = append(dst, `],"parallel_tool_calls":`...)
	if w.ParallelToolCalls != nil && !*w.ParallelToolCalls {
		dst = append(dst, "false"...)
	} else {
		dst = append(dst, "true"...)
	}
	dst = append(dst, `,"previous_response_id":null,"prompt_cache_key":`...)
	dst = translate.AppendNullableString(dst, w.PromptCacheKey)
	dst = append(dst, `,"reasoning":null,"safety_identifier":`...)
	dst = translate.AppendNullableString(dst, w.SafetyIdentifier)
	dst = append(dst, `,"service_tier":"default","store":false,"temperature":`...)
	dst = appendNullableFloat(dst, w.Temperature)
	dst = append(dst, `,"text":{"format":`...)
	if w.Text != nil && present(w.Text.Format) {
		f, _ := translate.CompactObject(w.Text.Format)
		dst = append(dst, f...)
	} else {
		dst = append(dst, `{"type":"text"}`...)
	}
	dst = append(dst, `},"tool_choice":`...)
	if present(w.ToolChoice) {
		dst = append(dst, compact(w.ToolChoice)...)
	} else {
		dst = append(dst, `"auto"`...)
	}
	dst = append(dst, `,"tools":[`...)
	for i, t := range w.Tools {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, compact(t)...)
	}
	dst = append(dst, `],"top_logprobs":0,"top_p":`...)
	dst = appendNullableFloat(dst, w.TopP)
	dst = append(dst, `,"truncation":"disabled","frequency_penalty":null,"presence_penalty":null,"usage":`...)
	dst = appendUsage(dst, st.usage)
	return append(dst, '}')
}

// compact returns a value of the request (already validated JSON) compacted.
func compact(raw []byte) []byte {
	if obj, ok := translate.CompactObject(raw); ok {
		return obj
	}
	return trimSpace(raw)
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\n' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// Response turns the engine's non-streamed Chat Completions answer into a
// Response object.
func (r *Request) Response(body []byte, env translate.Env) ([]byte, error) {
	resp, err := translate.DecodeResponse(body)
	if err != nil {
		return nil, err
	}
	ch := &resp.Choices[0]
	now := env.Time().Unix()
	st := &state{id: env.ID("resp_"), createdAt: now, usage: translate.RealUsage(resp.Usage)}
	if c := ch.Message.Content; (c != nil && *c != "") || len(ch.Message.ToolCalls) == 0 {
		text := ""
		if c != nil {
			text = *c
		}
		st.items = append(st.items, item{kind: messageItem, id: env.ID("msg_"), text: []byte(text), done: true})
	}
	for _, tc := range ch.Message.ToolCalls {
		if tc.Function.Name == "" {
			return nil, translate.EngineError(errNoName)
		}
		callID := tc.ID
		if callID == "" {
			callID = env.ID("call_")
		}
		args := tc.Function.Arguments
		if args == "" {
			args = "{}"
		}
		st.items = append(st.items, item{kind: callItem, id: env.ID("fc_"), callID: callID, name: tc.Function.Name, text: []byte(args), done: true})
	}
	st.finish(ch.FinishReason, now)
	return r.appendResponse(make([]byte, 0, 1024+len(body)), st), nil
}

// errorType is OpenAI's error type for an HTTP status.
func errorType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}
