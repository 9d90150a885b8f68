package ollamaapi

import (
	"net/http"
	"time"

	"github.com/unjuno/flm/core/translate"
)

// Stream converts an engine's Chat Completions (or Completions) stream into
// Ollama's NDJSON stream. It implements translate.Stream.
type Stream struct {
	model      string
	generate   bool // /api/generate lines ("response") instead of /api/chat ("message")
	noThinking bool
	env        translate.Env
	start      time.Time

	first, last time.Time // first and last generated token, as FLM saw them
	calls       []call
	callIndex   []int // engine tool-call index → calls
	finish      string
	finished    bool
	done        bool
	usage       translate.Usage
	hasUsage    bool
	timings     translate.Timings
	hasTimings  bool

	chunk translate.Chunk
}

var _ translate.Stream = (*Stream)(nil)

// NewStream returns the converter for this request's streamed answer;
// start is when FLM received the request.
func (r *ChatRequest) NewStream(env translate.Env, start time.Time) *Stream {
	return &Stream{model: r.Model, noThinking: r.NoThinking, env: env, start: start}
}

// NewStream returns the converter for this request's streamed answer.
func (r *GenerateRequest) NewStream(env translate.Env, start time.Time) *Stream {
	return &Stream{model: r.Model, generate: true, noThinking: r.NoThinking, env: env, start: start}
}

// Done reports whether the stream has ended.
func (s *Stream) Done() bool { return s.done }

func (s *Stream) line(dst []byte, now time.Time, content, thinking string) []byte {
	if s.first.IsZero() {
		s.first = now
	}
	s.last = now
	dst = appendHead(dst, s.model, now)
	if s.generate {
		dst = append(dst, `,"response":`...)
		dst = translate.AppendString(dst, content)
		if thinking != "" {
			dst = append(dst, `,"thinking":`...)
			dst = translate.AppendString(dst, thinking)
		}
	} else {
		dst, _ = appendMessage(dst, content, thinking, nil)
	}
	return append(dst, ",\"done\":false}\n"...)
}

// Feed converts one payload of the engine's stream.
func (s *Stream) Feed(dst, payload []byte) ([]byte, error) {
	if s.done {
		return dst, nil
	}
	if translate.IsDone(payload) {
		return s.complete(dst)
	}
	if err := translate.DecodeChunk(payload, &s.chunk); err != nil {
		return s.Fail(dst, http.StatusBadGateway, err.Error()), err
	}
	c := &s.chunk
	if len(c.Error) > 0 && string(c.Error) != "null" {
		msg := translate.ErrorMessage(c.Error)
		return s.Fail(dst, http.StatusBadGateway, msg), translate.EngineError("%s", msg)
	}
	if ch := c.First(); ch != nil {
		now := s.env.Time()
		thinking := ""
		if !s.noThinking {
			thinking = ch.Delta.Thinking()
		}
		content := ch.Text
		if d := ch.Delta.Content; d != nil {
			content += *d
		}
		if content != "" || thinking != "" {
			dst = s.line(dst, now, content, thinking)
		}
		for i := range ch.Delta.ToolCalls {
			s.toolDelta(&ch.Delta.ToolCalls[i], i)
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			s.finish, s.finished = *ch.FinishReason, true
		}
	}
	if u := translate.RealUsage(c.Usage); u != nil {
		s.usage, s.hasUsage = *u, true
	}
	if c.Timings != nil {
		s.timings, s.hasTimings = *c.Timings, true
	}
	return dst, nil
}

// toolDelta collects a call: Ollama sends each call whole, with its
// arguments as an object, so calls are written when the stream finishes.
func (s *Stream) toolDelta(tc *translate.ToolCallDelta, pos int) {
	idx := pos
	if tc.Index != nil {
		idx = *tc.Index
	}
	if idx < 0 || idx >= 1<<10 {
		return
	}
	for len(s.callIndex) <= idx {
		s.callIndex = append(s.callIndex, -1)
	}
	i := s.callIndex[idx]
	if i < 0 || (tc.ID != "" && tc.ID != s.calls[i].id) {
		id := tc.ID
		if id == "" {
			id = s.env.ID("call_")
		}
		s.calls = append(s.calls, call{id: id, name: tc.Function.Name})
		i = len(s.calls) - 1
		s.callIndex[idx] = i
	}
	s.calls[i].args = append(s.calls[i].args, tc.Function.Arguments...)
}

func (s *Stream) complete(dst []byte) ([]byte, error) {
	now := s.env.Time()
	if len(s.calls) > 0 && !s.generate {
		line := appendHead(nil, s.model, now)
		line, err := appendMessage(line, "", "", s.calls)
		if err != nil {
			return s.Fail(dst, http.StatusBadGateway, err.Error()), err
		}
		dst = append(dst, line...)
		dst = append(dst, ",\"done\":false}\n"...)
		if s.first.IsZero() {
			s.first = now
		}
		s.last = now
	}
	s.done = true
	m := metrics{total: now.Sub(s.start)}
	if s.hasUsage {
		m.usage = &s.usage
	}
	if s.hasTimings {
		m.fromTimings(&s.timings)
	} else if !s.first.IsZero() {
		m.promptEval, m.eval = s.first.Sub(s.start), s.last.Sub(s.first)
	}
	dst = appendHead(dst, s.model, now)
	if s.generate {
		dst = append(dst, `,"response":""`...)
	} else {
		dst = append(dst, `,"message":{"role":"assistant","content":""}`...)
	}
	dst = appendDone(dst, s.finish, &m)
	return append(dst, '\n'), nil
}

// End is called at the end of the engine's stream.
func (s *Stream) End(dst []byte) []byte {
	if s.done {
		return dst
	}
	if s.finished {
		dst, _ = s.complete(dst)
		return dst
	}
	return s.Fail(dst, http.StatusBadGateway, "the engine ended the stream early")
}

// Fail ends the stream with an error line, as Ollama does.
func (s *Stream) Fail(dst []byte, _ int, message string) []byte {
	if s.done {
		return dst
	}
	s.done = true
	dst = append(dst, ErrorBody(message)...)
	return append(dst, '\n')
}
