package anthropic

import (
	"encoding/json"
	"net/http"

	"github.com/unjuno/flm/core/translate"
)

const errNoName = "the engine sent a tool call without a function name"

type toolSlot struct {
	block int // -1: no block yet
	id    string
	args  []byte // the arguments so far, checked when the message ends
}

type blockKind uint8

const (
	noBlock blockKind = iota
	textBlock
	thinkingBlock
	toolBlock
)

// Stream converts an engine's Chat Completions stream into Anthropic's
// Messages stream. It implements translate.Stream.
type Stream struct {
	req *Request
	env translate.Env

	started, done bool
	open          blockKind
	index         int // index of the open block; next block is index+1
	blocks        int // blocks opened so far
	// tools maps the engine's tool-call index to the tool_use block opened
	// for it.
	tools  []toolSlot
	called bool

	finish   string
	stop     json.RawMessage
	finished bool
	usage    translate.Usage
	hasUsage bool

	chunk translate.Chunk
}

var _ translate.Stream = (*Stream)(nil)

// NewStream returns the converter for this request's streamed answer.
func (r *Request) NewStream(env translate.Env) *Stream {
	return &Stream{req: r, env: env}
}

// Done reports whether the stream has ended.
func (s *Stream) Done() bool { return s.done }

func appendEvent(dst []byte, name string) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	return append(dst, "\ndata: "...)
}

func (s *Stream) start(dst []byte) []byte {
	if s.started {
		return dst
	}
	s.started = true
	dst = appendEvent(dst, "message_start")
	dst = append(dst, `{"type":"message_start","message":{"id":`...)
	dst = translate.AppendString(dst, s.env.ID("msg_"))
	dst = append(dst, `,"type":"message","role":"assistant","model":`...)
	dst = translate.AppendString(dst, s.req.Model)
	// The engine's counts come with its last chunk; message_delta has them.
	return append(dst, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}`+"\n\n"...)
}

func (s *Stream) openBlock(dst []byte, kind blockKind) []byte {
	dst = s.closeBlock(dst)
	s.open = kind
	s.index = s.blocks
	s.blocks++
	dst = appendEvent(dst, "content_block_start")
	dst = append(dst, `{"type":"content_block_start","index":`...)
	dst = translate.AppendInt(dst, int64(s.index))
	switch kind {
	case textBlock:
		dst = append(dst, `,"content_block":{"type":"text","text":""}}`...)
	case thinkingBlock:
		dst = append(dst, `,"content_block":{"type":"thinking","thinking":"","signature":""}}`...)
	}
	if kind != toolBlock {
		dst = append(dst, "\n\n"...)
	}
	return dst
}

func (s *Stream) closeBlock(dst []byte) []byte {
	if s.open == noBlock {
		return dst
	}
	s.open = noBlock
	dst = appendEvent(dst, "content_block_stop")
	dst = append(dst, `{"type":"content_block_stop","index":`...)
	dst = translate.AppendInt(dst, int64(s.index))
	return append(dst, "}\n\n"...)
}

func (s *Stream) delta(dst []byte, index int, kind, field, text string) []byte {
	dst = appendEvent(dst, "content_block_delta")
	dst = append(dst, `{"type":"content_block_delta","index":`...)
	dst = translate.AppendInt(dst, int64(index))
	dst = append(dst, `,"delta":{"type":"`...)
	dst = append(dst, kind...)
	dst = append(dst, `","`...)
	dst = append(dst, field...)
	dst = append(dst, `":`...)
	dst = translate.AppendString(dst, text)
	return append(dst, "}}\n\n"...)
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
		d := &ch.Delta
		if th := d.Thinking(); th != "" && s.req.Thinking {
			if s.open != thinkingBlock {
				dst = s.openBlock(dst, thinkingBlock)
			}
			dst = s.delta(dst, s.index, "thinking_delta", "thinking", th)
		}
		if d.Content != nil && *d.Content != "" {
			if s.open != textBlock {
				dst = s.openBlock(dst, textBlock)
			}
			dst = s.delta(dst, s.index, "text_delta", "text", *d.Content)
		}
		for i := range d.ToolCalls {
			dst = s.toolDelta(dst, &d.ToolCalls[i], i)
			if s.done {
				return dst, translate.EngineError("the engine sent tool calls that cannot be translated")
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			s.finish, s.finished = *ch.FinishReason, true
			s.stop = append(s.stop[:0], ch.StopReason...)
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
		return dst // no engine sends a thousand calls; bound the table
	}
	for len(s.tools) <= idx {
		s.tools = append(s.tools, toolSlot{block: -1})
	}
	slot := &s.tools[idx]
	// A call opens its tool_use block when first seen; a new id at a known
	// index is a new call (engines that number every call 0).
	if slot.block < 0 || (tc.ID != "" && tc.ID != slot.id) {
		if tc.Function.Name == "" {
			return s.Fail(dst, http.StatusBadGateway, errNoName)
		}
		s.called = true
		dst = s.openBlock(dst, toolBlock)
		slot.block, slot.id, slot.args = s.index, tc.ID, slot.args[:0]
		id := tc.ID
		if id == "" {
			id = s.env.ID("toolu_")
		}
		dst = append(dst, `,"content_block":{"type":"tool_use","id":`...)
		dst = translate.AppendString(dst, id)
		dst = append(dst, `,"name":`...)
		dst = translate.AppendString(dst, tc.Function.Name)
		dst = append(dst, ",\"input\":{}}}\n\n"...)
	}
	if tc.Function.Arguments != "" {
		if s.open != toolBlock || slot.block != s.index {
			// Anthropic streams one block at a time (the Go SDK appends
			// deltas to the last block): a return to an earlier call cannot
			// be translated faithfully.
			return s.Fail(dst, http.StatusBadGateway, "the engine interleaved the arguments of several tool calls, which cannot be translated into this stream")
		}
		slot.args = append(slot.args, tc.Function.Arguments...)
		dst = s.delta(dst, slot.block, "input_json_delta", "partial_json", tc.Function.Arguments)
	}
	return dst
}

// complete ends a stream that finished: the open block is closed, then
// message_delta with the stop reason and usage, then message_stop.
func (s *Stream) complete(dst []byte) []byte {
	// tool_use input is an object: a message whose streamed arguments do
	// not make one ends with an error, as the non-streamed answer does.
	for _, t := range s.tools {
		if t.block >= 0 && len(t.args) > 0 {
			if _, ok := translate.CompactObject(t.args); !ok {
				return s.Fail(s.start(dst), http.StatusBadGateway, "the engine called a tool with arguments that are not a JSON object")
			}
		}
	}
	dst = s.start(dst)
	dst = s.closeBlock(dst)
	reason, seq := s.req.stopReason(s.finish, s.stop, s.called)
	s.done = true
	dst = appendEvent(dst, "message_delta")
	dst = append(dst, `{"type":"message_delta","delta":{"stop_reason":`...)
	dst = translate.AppendString(dst, reason)
	dst = append(dst, `,"stop_sequence":`...)
	dst = translate.AppendNullableString(dst, seq)
	dst = append(dst, `},"usage":`...)
	var u *translate.Usage
	if s.hasUsage {
		u = &s.usage
	}
	dst = appendUsage(dst, u)
	dst = append(dst, "}\n\n"...)
	dst = appendEvent(dst, "message_stop")
	return append(dst, `{"type":"message_stop"}`+"\n\n"...)
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

// Fail ends the stream with Anthropic's error event.
func (s *Stream) Fail(dst []byte, status int, message string) []byte {
	if s.done {
		return dst
	}
	s.done = true
	dst = appendEvent(dst, "error")
	dst = appendError(dst, status, message)
	return append(dst, "\n\n"...)
}
