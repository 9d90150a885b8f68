package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/gateway"
)

// forwardRoute handles one OpenAI POST route: validate, route, rewrite,
// forward, relay.
func (s *Server) forwardRoute(route gateway.Route) echo.HandlerFunc {
	return func(c *echo.Context) error {
		body, err := readBody(c.Request())
		if err != nil {
			if isTooLarge(err) {
				return tooLarge(s.opts.BodyLimit)
			}
			return newError(http.StatusBadRequest, typeInvalid, "invalid_body", "could not read the request body")
		}
		req, err := gateway.ParseRequest(route, body)
		if err != nil {
			return fromGateway(err)
		}
		target, err := s.resolve(c.Request().Context(), req.Model)
		if err != nil {
			return fromGateway(err)
		}
		out, err := req.Rewrite(target)
		if err != nil {
			return fromGateway(err)
		}
		return s.forward(c, route, req.Stream, req.WantsUsage(), target, out)
	}
}

// readBody reads a request body in one allocation when its declared length
// is modest; a large declared length is not trusted for allocation (a
// client could declare 10 MiB and send nothing).
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > 0 && r.ContentLength <= 1<<20 {
		b := make([]byte, r.ContentLength)
		_, err := io.ReadFull(r.Body, b)
		return b, err
	}
	return io.ReadAll(r.Body)
}

// resolve routes a model, re-detecting engines once on a miss.
func (s *Server) resolve(ctx context.Context, model string) (gateway.Target, error) {
	missed := time.Now()
	t, err := s.snap.Load().catalog.Resolve(model)
	var ge *gateway.Error
	if errors.As(err, &ge) && (ge.Kind == gateway.ModelNotFound || ge.Kind == gateway.EngineUnavailable) && s.refreshOnMiss(ctx, missed) {
		return s.snap.Load().catalog.Resolve(model)
	}
	return t, err
}

// forward sends body to the target engine and relays its answer.
func (s *Server) forward(c *echo.Context, route gateway.Route, stream, usage bool, t gateway.Target, body []byte) error {
	ctx := c.Request().Context()
	up, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(t.Endpoint.BaseURL, "/")+route.Path(), bytes.NewReader(body))
	if err != nil {
		return newError(http.StatusInternalServerError, typeServer, "internal_error", "internal error")
	}
	// Only what the engine needs: never the client's Authorization,
	// Cookie or x-api-key.
	up.Header.Set("Content-Type", "application/json")
	if stream {
		up.Header.Set("Accept", "text/event-stream")
	} else {
		up.Header.Set("Accept", "application/json")
	}
	up.Header.Set("User-Agent", "flm")
	if t.Endpoint.APIKeyEnv != "" {
		if key := s.opts.Getenv(t.Endpoint.APIKeyEnv); key != "" {
			up.Header.Set("Authorization", "Bearer "+key)
		}
	}
	// llama-server closes the connection after every streamed response
	// while announcing keep-alive; a pooled connection reused after that
	// fails. Streams to it get a connection of their own.
	if stream && t.Endpoint.Kind == engine.LlamaCPP {
		up.Close = true
	}
	resp, err := s.transport.RoundTrip(up)
	if err != nil {
		if ctx.Err() != nil {
			return nil // the client went away; nothing to answer
		}
		s.metrics.upstreamErrs.WithLabelValues(t.Endpoint.ID, "unreachable").Inc()
		s.refreshInBackground()
		return newError(http.StatusBadGateway, typeEngine, "engine_unreachable", "engine %s (%s) did not answer: %s", t.Endpoint.ID, engine.DisplayName(t.Endpoint.Kind), transportReason(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		s.metrics.upstreamErrs.WithLabelValues(t.Endpoint.ID, "status").Inc()
		return engineError(t, resp)
	}
	w := c.Response()
	ct := resp.Header.Get("Content-Type")
	if stream && strings.HasPrefix(ct, "text/event-stream") {
		return s.relaySSE(c, t, resp.Body, usage)
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(resp.StatusCode)
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	// Echo's response writer hides http's ReadFrom, so io.Copy would
	// allocate 32 KiB per request; the pooled buffer avoids that.
	if _, err := io.CopyBuffer(w, resp.Body, *bp); err != nil && ctx.Err() == nil {
		s.metrics.upstreamErrs.WithLabelValues(t.Endpoint.ID, "broken").Inc()
		s.log.Warn("engine response cut", "request_id", requestID(c), "engine", t.Endpoint.ID, "err", err.Error())
		panic(http.ErrAbortHandler) // the client sees a truncated response, not a silent success
	}
	return nil
}

func transportReason(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"):
		return "connection refused"
	case strings.Contains(msg, "timeout"), errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case strings.Contains(msg, "reset"), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	}
	return "connection failed"
}

// engineError normalises an engine's error answer into FLM's envelope.
// Engines disagree on shape ({"error":{…}}, {"error":"…"}, {"object":
// "error",…}, FastAPI's {"detail":…}, plain text); the user gets one.
func engineError(t gateway.Target, resp *http.Response) *apiError {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := engineMessage(raw)
	name := engine.DisplayName(t.Endpoint.Kind)
	status := resp.StatusCode
	e := &apiError{Status: status, Message: name + ": " + msg}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		// The client's key was FLM's; a refusal here is about the
		// engine's own key in FLM's endpoint config.
		e.Status, e.Type, e.Code = http.StatusBadGateway, typeEngine, "engine_auth_failed"
		e.Message = name + " refused FLM's credentials; check the endpoint's --api-key-env variable"
	case status == http.StatusNotFound:
		e.Type, e.Code, e.Param = typeNotFound, "model_not_found", "model"
	case status == http.StatusTooManyRequests:
		e.Type, e.Code = typeRate, "engine_rate_limited"
		e.Header = retryAfter(5)
	case status == http.StatusServiceUnavailable:
		e.Type, e.Code = typeEngine, "engine_unavailable"
		e.Header = retryAfter(5)
	case status == http.StatusNotImplemented:
		e.Type, e.Code = typeInvalid, "not_supported"
	case status >= 400 && status < 500:
		e.Type, e.Code = typeInvalid, "engine_rejected_request"
	default:
		e.Status, e.Type, e.Code = http.StatusBadGateway, typeEngine, "engine_error"
	}
	return e
}

func engineMessage(raw []byte) string {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	}
	msg := ""
	if json.Unmarshal(raw, &v) == nil {
		var nested struct {
			Message string `json:"message"`
		}
		var flat string
		switch {
		case json.Unmarshal(v.Error, &nested) == nil && nested.Message != "":
			msg = nested.Message
		case json.Unmarshal(v.Error, &flat) == nil && flat != "":
			msg = flat
		case v.Message != "":
			msg = v.Message
		case len(v.Detail) > 0:
			msg = string(v.Detail)
		}
	}
	if msg == "" {
		msg = strings.TrimSpace(string(raw))
	}
	if msg == "" {
		msg = "no details"
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return strings.ToValidUTF8(msg, "�")
}

// relaySSE copies an event stream as it arrives: every read is forwarded
// and flushed at once (no batching), complete events only. Two things are
// normalised on the way (PROXY_SPEC.md):
//
//   - a stream that ends without a usage chunk (engines that ignore
//     stream_options.include_usage) gets one before [DONE], estimated from
//     the content chunks and marked "flm_estimated";
//   - a stream that breaks or ends before [DONE] gets an error event and
//     then [DONE], so a client never mistakes a cut answer for a whole one.
func (s *Server) relaySSE(c *echo.Context, t gateway.Target, body io.Reader, addUsage bool) error {
	w := c.Response()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	s.metrics.activeStreams.Inc()
	defer s.metrics.activeStreams.Dec()

	st := sseState{addUsage: addUsage}
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	buf := *bp
	ctx := c.Request().Context()
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if out := st.feed(buf[:n]); len(out) > 0 {
				if _, werr := w.Write(out); werr != nil {
					return nil // client gone; its context cancels the engine request
				}
				_ = rc.Flush()
			}
		}
		if err == nil && !st.done {
			continue
		}
		if errors.Is(err, io.EOF) && !st.done {
			if out := st.finish(); len(out) > 0 {
				_, _ = w.Write(out)
				_ = rc.Flush()
			}
		}
		if st.done || ctx.Err() != nil {
			return nil
		}
		s.metrics.upstreamErrs.WithLabelValues(t.Endpoint.ID, "broken").Inc()
		reason := "the engine ended the stream early"
		if !errors.Is(err, io.EOF) {
			reason = "the engine's stream broke: " + transportReason(err)
		}
		// A half-received event is dropped: sending it would hand the client
		// truncated JSON.
		var out []byte
		e := newError(http.StatusBadGateway, typeEngine, "stream_error", "%s", reason)
		out = append(out, "data: "...)
		out = append(out, e.body(requestID(c))...)
		out = append(out, "\n\ndata: [DONE]\n\n"...)
		_, _ = w.Write(out)
		_ = rc.Flush()
		return nil
	}
}

var eventEnd = []byte("\n\n")

// relayBufs holds the read buffers of streams: SSE events are small, and a
// thousand concurrent streams must not cost 32 KiB each.
var relayBufs = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

// maxPendingEvent bounds an event without a terminator; past it the bytes
// are passed through as they are.
const maxPendingEvent = 1 << 20

// sseState follows an event stream's events (any of the line endings SSE
// allows: LF, CRLF, CR).
type sseState struct {
	pending []byte // an incomplete event
	last    []byte // the payload of the last data event
	usage   bool   // a usage chunk was seen
	chunks  int    // events that carried generated text
	done    bool   // [DONE] was relayed
	// addUsage: synthesise a usage chunk if the engine sends none.
	addUsage bool
}

// nextEvent returns the length of the first complete event in b (its
// lines and the blank line that ends it).
func nextEvent(b []byte, atEOF bool) (int, bool) {
	lineStart := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\n' && c != '\r' {
			continue
		}
		end := i + 1
		if c == '\r' {
			if i+1 == len(b) && !atEOF {
				return 0, false // a CR at the end may be the first half of CRLF
			}
			if i+1 < len(b) && b[i+1] == '\n' {
				end = i + 2
			}
		}
		if i == lineStart {
			return end, true
		}
		lineStart = end
		i = end - 1
	}
	return 0, false
}

// eventData joins the event's data lines ("data:" with an optional space).
func eventData(ev []byte) ([]byte, bool) {
	var data []byte
	found := false
	for len(ev) > 0 {
		i := bytes.IndexAny(ev, "\r\n")
		line := ev
		if i >= 0 {
			line, ev = ev[:i], ev[i+1:]
		} else {
			ev = nil
		}
		v, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue
		}
		v, _ = bytes.CutPrefix(v, []byte(" "))
		if found {
			data = append(data, '\n')
		}
		data = append(data, v...)
		found = true
	}
	return data, found
}

// feed takes bytes from the engine and returns what to send now: complete
// events only.
func (st *sseState) feed(in []byte) []byte { return st.process(in, false) }

// finish handles the end of the engine's stream: a last event ended by a
// lone CR is complete now.
func (st *sseState) finish() []byte { return st.process(nil, true) }

func (st *sseState) process(in []byte, atEOF bool) []byte {
	st.pending = append(st.pending, in...)
	var out []byte
	for {
		n, ok := nextEvent(st.pending, atEOF)
		if !ok {
			break
		}
		ev := st.pending[:n]
		data, isData := eventData(ev)
		if isData && string(bytes.TrimSpace(data)) == "[DONE]" {
			if st.addUsage && !st.usage {
				out = append(out, st.usageEvent()...)
			}
			st.done = true
		} else if isData {
			st.observe(data)
		}
		out = append(out, ev...)
		st.pending = st.pending[n:]
	}
	if len(st.pending) > maxPendingEvent {
		out = append(out, st.pending...)
		st.pending = st.pending[:0]
	}
	if len(st.pending) == 0 {
		st.pending = nil
	}
	return out
}

func (st *sseState) observe(payload []byte) {
	if v, ok := jsonField(payload, "usage"); ok && v == '{' {
		st.usage = true
	}
	if textStarts(payload, "content") || textStarts(payload, "text") {
		st.chunks++
	}
	st.last = append(st.last[:0], payload...)
}

// jsonField finds "name" followed by a colon and returns the first byte of
// its value (whitespace allowed around the colon).
func jsonField(payload []byte, name string) (byte, bool) {
	key := `"` + name + `"`
	for off := 0; ; {
		i := bytes.Index(payload[off:], []byte(key))
		if i < 0 {
			return 0, false
		}
		j := skipWS(payload, off+i+len(key))
		if j < len(payload) && payload[j] == ':' {
			j = skipWS(payload, j+1)
			if j < len(payload) {
				return payload[j], true
			}
			return 0, false
		}
		off += i + len(key)
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// textStarts reports a non-empty string value of field.
func textStarts(payload []byte, field string) bool {
	key := `"` + field + `"`
	i := bytes.Index(payload, []byte(key))
	if i < 0 {
		return false
	}
	j := skipWS(payload, i+len(key))
	if j >= len(payload) || payload[j] != ':' {
		return false
	}
	j = skipWS(payload, j+1)
	return j+1 < len(payload) && payload[j] == '"' && payload[j+1] != '"'
}

// usageEvent builds the estimated usage chunk from the last event's id,
// object, created and model.
func (st *sseState) usageEvent() []byte {
	var last struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		Model   string `json:"model"`
	}
	_ = json.Unmarshal(st.last, &last)
	ev := map[string]any{
		"id": last.ID, "object": last.Object, "created": last.Created, "model": last.Model, "choices": []any{},
		"usage": map[string]any{"prompt_tokens": 0, "completion_tokens": st.chunks, "total_tokens": st.chunks, "flm_estimated": true},
	}
	b, _ := json.Marshal(ev)
	return append(append([]byte("data: "), b...), eventEnd...)
}
