package responses

import (
	"net/http"

	"github.com/unjuno/flm/core/translate"
)

// errInterleaved: the Responses stream has one open item at a time; an
// engine that goes back to an earlier call cannot be translated faithfully.
const errNoName = "the engine sent a tool call without a function name"

const errInterleaved = "the engine interleaved the arguments of several tool calls, which cannot be translated into this stream"

// Stream converts an engine's Chat Completions stream into the Responses
// event stream. It implements translate.Stream.
type Stream struct {
	req *Request
	env translate.Env
	st  state
	seq int64

	started, done bool
	open          int // index of the open output item, -1 when none
	// calls maps the engine's tool-call index to an output item.
	calls    []int
	finish   string
	finished bool
	usage    translate.Usage
	hasUsage bool

	chunk translate.Chunk
}

var _ translate.Stream = (*Stream)(nil)

// NewStream returns the converter for this request's streamed answer.
func (r *Request) NewStream(env translate.Env) *Stream {
	return &Stream{req: r, env: env, open: -1}
}

// Done reports whether the stream has ended.
func (s *Stream) Done() bool { return s.done }

// event opens an event: its SSE lines and the JSON object up to the type.
func (s *Stream) event(dst []byte, name string) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	dst = append(dst, "\ndata: {\"type\":\""...)
	dst = append(dst, name...)
	return append(dst, '"')
}

// end closes an event with its sequence number.
func (s *Stream) end(dst []byte) []byte {
	dst = append(dst, `,"sequence_number":`...)
	dst = translate.AppendInt(dst, s.seq)
	s.seq++
	return append(dst, "}\n\n"...)
}

func (s *Stream) lifecycle(dst []byte, name string) []byte {
	dst = s.event(dst, name)
	dst = append(dst, `,"response":`...)
	dst = s.req.appendResponse(dst, &s.st)
	return s.end(dst)
}

func (s *Stream) start(dst []byte) []byte {
	if s.started {
		return dst
	}
	s.started = true
	s.st = state{id: s.env.ID("resp_"), createdAt: s.env.Time().Unix(), status: "in_progress"}
	dst = s.lifecycle(dst, "response.created")
	return s.lifecycle(dst, "response.in_progress")
}

func (s *Stream) itemRef(dst []byte, i int) []byte {
	dst = append(dst, `,"item_id":`...)
	dst = translate.AppendString(dst, s.st.items[i].id)
	dst = append(dst, `,"output_index":`...)
	return translate.AppendInt(dst, int64(i))
}

func (s *Stream) addItem(dst []byte, it item) []byte {
	dst = s.closeItem(dst)
	s.st.items = append(s.st.items, it)
	s.open = len(s.st.items) - 1
	dst = s.event(dst, "response.output_item.added")
	dst = append(dst, `,"output_index":`...)
	dst = translate.AppendInt(dst, int64(s.open))
	dst = append(dst, `,"item":`...)
	dst = appendItem(dst, &s.st.items[s.open], "in_progress")
	dst = s.end(dst)
	if it.kind == messageItem {
		dst = s.event(dst, "response.content_part.added")
		dst = s.itemRef(dst, s.open)
		dst = append(dst, `,"content_index":0,"part":{"type":"output_text","text":"","annotations":[],"logprobs":[]}`...)
		dst = s.end(dst)
	}
	return dst
}

// closeItem ends the open output item with its .done events.
func (s *Stream) closeItem(dst []byte) []byte {
	if s.open < 0 {
		return dst
	}
	i := s.open
	s.open = -1
	it := &s.st.items[i]
	it.done = true
	if it.kind == messageItem {
		dst = s.event(dst, "response.output_text.done")
		dst = s.itemRef(dst, i)
		dst = append(dst, `,"content_index":0,"text":`...)
		dst = translate.AppendString(dst, string(it.text))
		dst = append(dst, `,"logprobs":[]`...)
		dst = s.end(dst)
		dst = s.event(dst, "response.content_part.done")
		dst = s.itemRef(dst, i)
		dst = append(dst, `,"content_index":0,"part":`...)
		dst = appendTextPart(dst, it.text)
		dst = s.end(dst)
	} else {
		if len(it.text) == 0 {
			it.text = append(it.text, "{}"...)
		}
		dst = s.event(dst, "response.function_call_arguments.done")
		dst = s.itemRef(dst, i)
		dst = append(dst, `,"name":`...)
		dst = translate.AppendString(dst, it.name)
		dst = append(dst, `,"arguments":`...)
		dst = translate.AppendString(dst, string(it.text))
		dst = s.end(dst)
	}
	dst = s.event(dst, "response.output_item.done")
	dst = append(dst, `,"output_index":`...)
	dst = translate.AppendInt(dst, int64(i))
	dst = append(dst, `,"item":`...)
	dst = appendItem(dst, it, "completed")
	return s.end(dst)
}

// Feed converts one payload of the engine's stream.
func (s *Stream) Feed(dst, payload []byte) ([]byte, error) {
	if s.done {
		return dst, nil
	}
	if translate.IsDone(payload) {
		return s.complete(dst), nil
	}
	if err := translate.DecodeChunk(payload, &s.chunk); err != nil {
		return s.Fail(dst, http.StatusBadGateway, err.Error()), err
	}
	c := &s.chunk
	if len(c.Error) > 0 && string(c.Error) != "null" {
		msg := translate.ErrorMessage(c.Error)
		return s.Fail(dst, http.StatusBadGateway, msg), translate.EngineError("%s", msg)
	}
	dst = s.start(dst)
	if ch := c.First(); ch != nil {
		if d := ch.Delta.Content; d != nil && *d != "" {
			if s.open < 0 || s.st.items[s.open].kind != messageItem {
				dst = s.addItem(dst, item{kind: messageItem, id: s.env.ID("msg_")})
			}
			it := &s.st.items[s.open]
			it.text = append(it.text, *d...)
			dst = s.event(dst, "response.output_text.delta")
			dst = s.itemRef(dst, s.open)
			dst = append(dst, `,"content_index":0,"delta":`...)
			dst = translate.AppendString(dst, *d)
			dst = append(dst, `,"logprobs":[]`...)
			dst = s.end(dst)
		}
		for i := range ch.Delta.ToolCalls {
			dst = s.toolDelta(dst, &ch.Delta.ToolCalls[i], i)
			if s.done {
				return dst, translate.EngineError("the engine sent tool calls that cannot be translated")
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			s.finish, s.finished = *ch.FinishReason, true
		}
	}
	if u := translate.RealUsage(c.Usage); u != nil {
		s.usage, s.hasUsage = *u, true
	}
	return dst, nil
}

func (s *Stream) toolDelta(dst []byte, tc *translate.ToolCallDelta, pos int) []byte {
	idx := pos
	if tc.Index != nil {
		idx = *tc.Index
	}
	if idx < 0 || idx >= 1<<10 {
		return dst
	}
	for len(s.calls) <= idx {
		s.calls = append(s.calls, -1)
	}
	i := s.calls[idx]
	if i < 0 || (tc.ID != "" && tc.ID != s.st.items[i].callID) {
		if tc.Function.Name == "" {
			return s.Fail(dst, http.StatusBadGateway, errNoName)
		}
		callID := tc.ID
		if callID == "" {
			callID = s.env.ID("call_")
		}
		dst = s.addItem(dst, item{kind: callItem, id: s.env.ID("fc_"), callID: callID, name: tc.Function.Name})
		i = s.open
		s.calls[idx] = i
	}
	if a := tc.Function.Arguments; a != "" {
		if s.st.items[i].done {
			return s.Fail(dst, http.StatusBadGateway, errInterleaved)
		}
		s.st.items[i].text = append(s.st.items[i].text, a...)
		dst = s.event(dst, "response.function_call_arguments.delta")
		dst = s.itemRef(dst, i)
		dst = append(dst, `,"delta":`...)
		dst = translate.AppendString(dst, a)
		dst = s.end(dst)
	}
	return dst
}

func (s *Stream) complete(dst []byte) []byte {
	dst = s.start(dst)
	dst = s.closeItem(dst)
	if s.hasUsage {
		s.st.usage = &s.usage
	}
	s.st.finish(s.finish, s.env.Time().Unix())
	s.done = true
	name := "response.completed"
	if s.st.status == "incomplete" {
		name = "response.incomplete"
	}
	return s.lifecycle(dst, name)
}

// End is called at the end of the engine's stream.
func (s *Stream) End(dst []byte) []byte {
	if s.done {
		return dst
	}
	if s.finished {
		return s.complete(dst)
	}
	return s.Fail(dst, http.StatusBadGateway, "the engine ended the stream early")
}

// Fail ends the stream with an error event.
func (s *Stream) Fail(dst []byte, status int, message string) []byte {
	if s.done {
		return dst
	}
	s.done = true
	dst = ErrorEvent(dst, status, message, s.seq)
	s.seq++
	return dst
}

// ErrorEvent appends the Responses stream's error event, numbered seq: the
// flat fields of the published schema and a nested "error" object (what
// the official SDKs' stream readers turn into an exception). The proxy
// also ends a native Responses stream that broke with it.
func ErrorEvent(dst []byte, status int, message string, seq int64) []byte {
	typ, code := errorType(status), "stream_error"
	if status < 500 {
		code = "invalid_request"
	}
	dst = append(dst, "event: error\ndata: {\"type\":\"error\",\"code\":"...)
	dst = translate.AppendString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = translate.AppendString(dst, message)
	dst = append(dst, `,"param":null,"error":{"type":`...)
	dst = translate.AppendString(dst, typ)
	dst = append(dst, `,"code":`...)
	dst = translate.AppendString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = translate.AppendString(dst, message)
	dst = append(dst, `,"param":null},"sequence_number":`...)
	dst = translate.AppendInt(dst, seq)
	return append(dst, "}\n\n"...)
}
