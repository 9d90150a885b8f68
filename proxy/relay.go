package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/gateway"
	"github.com/unjuno/flm/proxy/egress"
)

// forwardRoute handles one OpenAI POST route: validate, route, check the
// key's model scope, rewrite, forward, relay.
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
		if err := s.checkScope(c, keyRecord(c), target.ID); err != nil {
			return err
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

// Deadlines of a relayed response (Options.StreamWriteTimeout and
// StreamIdleTimeout; settings proxy.stream_write_timeout_s and
// proxy.stream_idle_timeout_s).
const (
	// DefaultStreamWriteTimeout bounds each write of a response to the
	// client: a client that accepts no bytes for this long is cut off.
	DefaultStreamWriteTimeout = 60 * time.Second
	// DefaultStreamIdleTimeout bounds each wait for the engine while a
	// response is relayed (and a stream's response headers): generous
	// enough for a slow CPU engine's first token after a long prompt.
	DefaultStreamIdleTimeout = 600 * time.Second
)

func (s *Server) writeTimeout() time.Duration {
	if s.opts.StreamWriteTimeout > 0 {
		return s.opts.StreamWriteTimeout
	}
	return DefaultStreamWriteTimeout
}

func (s *Server) idleTimeout() time.Duration {
	if s.opts.StreamIdleTimeout > 0 {
		return s.opts.StreamIdleTimeout
	}
	return DefaultStreamIdleTimeout
}

// Why FLM ended an engine request (context.Cause of its context).
var (
	errEngineIdle    = errors.New("the engine sent nothing within the idle timeout")
	errClientStalled = errors.New("the client accepted no bytes within the write timeout")
	errClientGone    = errors.New("the client went away")
	errRelayDone     = errors.New("the relay ended")
)

// relay is one request's trip to an engine and back.
type relay struct {
	s *Server
	c *echo.Context
	t gateway.Target
	// ctx is the engine request's context, a child of the client's:
	// cancelling it ends the engine request (the engine sees its
	// connection close and stops generating).
	ctx    context.Context
	cancel context.CancelCauseFunc
	idle   idleWatch
	body   idleBody // the engine's response body, as the relay reads it
	cw     clientWriter
}

// idleWatch ends the engine request when the engine sends nothing for d.
// It runs only while FLM waits for the engine — armed before a stream's
// response headers and each body read (idleBody), stopped when the wait
// returns — so a healthy stream, however long, is never cut, a stalled
// one never pins its goroutine and the engine's generation, and a client
// slow to accept FLM's writes (the write timeout's business) is never
// blamed on the engine.
type idleWatch struct {
	d      time.Duration
	cancel context.CancelCauseFunc
	t      *time.Timer
}

func (w *idleWatch) arm() {
	if w.t == nil {
		cancel := w.cancel
		w.t = time.AfterFunc(w.d, func() { cancel(errEngineIdle) })
		return
	}
	w.t.Reset(w.d)
}

func (w *idleWatch) stop() {
	if w.t != nil {
		w.t.Stop()
	}
}

// idleBody is an engine's response body whose every read is one wait
// bounded by the idle watch.
type idleBody struct {
	io.ReadCloser
	w *idleWatch
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.w.arm()
	n, err := b.ReadCloser.Read(p)
	b.w.stop()
	return n, err
}

// clientWriter writes a response to the client with a deadline refreshed
// before each write (and flush): a client that stops reading is cut off
// after the write timeout instead of holding the relay forever. The last
// deadline also bounds the response's end, which net/http writes after
// the handler returns (and then clears the deadline for the next request
// on the connection).
type clientWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func newClientWriter(c *echo.Context, d time.Duration) clientWriter {
	// Writes go to the writer under Echo's: the status and "committed"
	// are Echo's (set through it by WriteHeader), and its Flush builds a
	// ResponseController per call.
	w := c.Response()
	if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
		w = u.Unwrap()
	}
	return clientWriter{w: w, rc: http.NewResponseController(w), d: d}
}

func (cw *clientWriter) deadline() {
	// ErrNotSupported (a test recorder) leaves writes unbounded.
	_ = cw.rc.SetWriteDeadline(time.Now().Add(cw.d))
}

// write writes p, unflushed (a non-streamed body).
func (cw *clientWriter) write(p []byte) error {
	cw.deadline()
	_, err := cw.w.Write(p)
	return err
}

// send writes p and flushes it: one event, one write, one flush, so the
// client gets each event the moment it is complete and never two glued.
func (cw *clientWriter) send(p []byte) error {
	cw.deadline()
	if _, err := cw.w.Write(p); err != nil {
		return err
	}
	return cw.rc.Flush()
}

func (cw *clientWriter) flush() error {
	cw.deadline()
	return cw.rc.Flush()
}

// forward sends body to the target engine and relays its answer.
func (s *Server) forward(c *echo.Context, route gateway.Route, stream, wantUsage bool, t gateway.Target, body []byte) error {
	r, resp, err := s.open(c, route.Path(), stream, t, body)
	if r == nil {
		return err
	}
	defer r.close(resp)
	if stream && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return r.relaySSE(resp.Body, wantUsage, nil)
	}
	return r.copyBody(resp)
}

// open sends body to the target engine's path and returns the relay and
// the engine's successful answer, for the caller to relay (as it is, or
// translated into another API family) and then close. An engine that
// cannot be reached, stalls or answers an error is the returned error,
// normalised. A nil relay without an error: the client went away, there
// is nothing to answer.
func (s *Server) open(c *echo.Context, path string, stream bool, t gateway.Target, body []byte) (*relay, *http.Response, error) {
	ctx, cancel := context.WithCancelCause(c.Request().Context())
	r := &relay{s: s, c: c, t: t, ctx: ctx, cancel: cancel, idle: idleWatch{d: s.idleTimeout(), cancel: cancel}}
	resp, err := r.roundTrip(path, stream, body)
	if err != nil {
		r.close(nil)
		if err == errClientGone {
			err = nil
		}
		return nil, nil, err
	}
	r.cw = newClientWriter(c, s.writeTimeout())
	r.body = idleBody{resp.Body, &r.idle}
	resp.Body = &r.body // a field of r: no allocation per request
	return r, resp, nil
}

// close ends the engine request: its body, the idle watch, its context.
func (r *relay) close(resp *http.Response) {
	if resp != nil {
		resp.Body.Close()
	}
	r.idle.stop()
	r.cancel(errRelayDone)
}

func (r *relay) roundTrip(path string, stream bool, body []byte) (*http.Response, error) {
	s, c, t := r.s, r.c, r.t
	up, err := http.NewRequestWithContext(r.ctx, http.MethodPost, strings.TrimRight(t.Endpoint.BaseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, newError(http.StatusInternalServerError, typeServer, "internal_error", "internal error")
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
	// Some engines (llama-server) close the connection after every
	// streamed response while announcing keep-alive; a pooled connection
	// reused after that fails. Their streams get a connection of their own.
	if stream && t.Habits.ClosesAfterStream {
		up.Close = true
	}
	if stream {
		// A stream's headers come before its first token: waiting for them
		// is bounded like waiting for any later bytes. A non-streamed
		// answer's headers come after the whole generation and keep the
		// transport's ResponseHeaderTimeout (long generations are legit).
		r.idle.arm()
	}
	resp, err := s.transport.RoundTrip(up)
	r.idle.stop() // the headers came (or never will): the body's reads re-arm it
	if err != nil {
		if c.Request().Context().Err() != nil {
			return nil, errClientGone // nothing to answer
		}
		if context.Cause(r.ctx) == errEngineIdle {
			s.metrics.relayTimeouts.WithLabelValues("engine_idle").Inc()
			s.metrics.upstreamErrs.WithLabelValues(t.Endpoint.ID, "idle").Inc()
			return nil, newError(http.StatusGatewayTimeout, typeEngine, "engine_timeout", "engine %s (%s) did not start answering within %s", t.Endpoint.ID, engine.DisplayName(t.Endpoint.Kind), r.idle.d)
		}
		if ae := s.egressError(t, err); ae != nil {
			s.metrics.upstreamErrs.WithLabelValues(t.Endpoint.ID, "egress").Inc()
			s.log.Warn("egress unavailable", "request_id", requestID(c), "engine", t.Endpoint.ID, "err", err.Error())
			s.refreshInBackground()
			return nil, ae
		}
		s.metrics.upstreamErrs.WithLabelValues(t.Endpoint.ID, "unreachable").Inc()
		s.refreshInBackground()
		return nil, newError(http.StatusBadGateway, typeEngine, "engine_unreachable", "engine %s (%s) did not answer: %s", t.Endpoint.ID, engine.DisplayName(t.Endpoint.Kind), transportReason(err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		s.metrics.upstreamErrs.WithLabelValues(t.Endpoint.ID, "status").Inc()
		r.idle.arm() // an error body that never ends is bounded too
		defer resp.Body.Close()
		return nil, engineError(t, resp)
	}
	return resp, nil
}

// copyBody relays a non-streamed answer as it arrives, each wait for the
// engine bounded by the idle timeout and each write by the write timeout.
func (r *relay) copyBody(resp *http.Response) error {
	w := r.c.Response()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	buf := *bp
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if werr := r.cw.write(buf[:n]); werr != nil {
				return r.clientFailed(werr)
			}
		}
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) || r.c.Request().Context().Err() != nil {
			return nil
		}
		kind := "broken"
		if context.Cause(r.ctx) == errEngineIdle {
			kind = "idle"
			r.s.metrics.relayTimeouts.WithLabelValues("engine_idle").Inc()
		}
		r.s.metrics.upstreamErrs.WithLabelValues(r.t.Endpoint.ID, kind).Inc()
		r.s.log.Warn("engine response cut", "request_id", requestID(r.c), "engine", r.t.Endpoint.ID, "err", err.Error())
		panic(http.ErrAbortHandler) // the client sees a truncated response, not a silent success
	}
}

// clientFailed ends the engine request after a write to the client
// failed: the client went away, or stopped reading for the write timeout.
func (r *relay) clientFailed(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		r.s.metrics.relayTimeouts.WithLabelValues("client_write").Inc()
		r.s.log.Warn("client stopped reading; response cut", "request_id", requestID(r.c), "engine", r.t.Endpoint.ID, "after", r.cw.d.String())
		r.cancel(errClientStalled)
		return nil
	}
	r.cancel(errClientGone)
	return nil
}

// drainWait and maxDrain bound the read of what an engine sends after
// [DONE].
const (
	drainWait = 100 * time.Millisecond
	maxDrain  = 64 << 10
)

// drain reads the end of the engine's body after [DONE] (normally only the
// last chunk of its chunked encoding), briefly: a body closed before its
// end closes the connection, and the next request would pay for a new one.
func (r *relay) drain(body io.Reader) {
	r.idle.stop()
	t := time.AfterFunc(drainWait, func() { r.cancel(errRelayDone) })
	defer t.Stop()
	_, _ = io.CopyN(io.Discard, body, maxDrain)
}

// relaySSE relays an event stream: each event the engine sends is written
// and flushed on its own the moment it is complete — never batched with
// the next, never split — and nothing is added (PROXY_SPEC.md):
//
//   - a usage-only chunk ("choices":[] with usage) the client did not ask
//     for is dropped;
//   - a stream that breaks, stalls or ends before [DONE] gets an error
//     event and then [DONE], so a client never mistakes a cut answer for
//     a whole one.
//
// nat relays another family's event stream an engine speaks natively
// (nil: OpenAI's): nothing is dropped, the stream ends with the event nat
// names, and a broken stream ends with nat's error event instead.
func (r *relay) relaySSE(body io.Reader, wantUsage bool, nat *nativeSSE) error {
	w := r.c.Response()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The headers go out at once: the client knows its request was
	// accepted while the engine works on its first token.
	if err := r.cw.flush(); err != nil {
		return r.clientFailed(err)
	}
	r.s.metrics.activeStreams.Inc()
	defer r.s.metrics.activeStreams.Dec()

	st := sseState{keepUsage: wantUsage || nat != nil, baseURL: r.t.Endpoint.BaseURL}
	var events int64 // relayed, for nat
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		st.push(buf[:n])
		for {
			ev, ok := st.next(errors.Is(err, io.EOF))
			if !ok {
				break
			}
			if werr := r.cw.send(ev); werr != nil {
				return r.clientFailed(werr)
			}
			if st.done {
				r.drain(body)
				return nil
			}
			if nat != nil {
				events++
				if nat.last(ev) {
					r.drain(body)
					return nil
				}
			}
		}
		if err == nil {
			continue
		}
		if r.c.Request().Context().Err() != nil {
			return nil // the client went away; its context ended the engine request
		}
		kind, reason := "broken", "the engine ended the stream early"
		switch {
		case context.Cause(r.ctx) == errEngineIdle:
			kind, reason = "idle", fmt.Sprintf("the engine sent nothing for %s; FLM ended the stream", r.idle.d)
			r.s.metrics.relayTimeouts.WithLabelValues("engine_idle").Inc()
		case !errors.Is(err, io.EOF):
			reason = "the engine's stream broke: " + transportReason(err)
		}
		r.s.metrics.upstreamErrs.WithLabelValues(r.t.Endpoint.ID, kind).Inc()
		// A half-received event is dropped: sending it would hand the client
		// truncated JSON.
		if nat != nil {
			_ = r.cw.send(nat.fail(reason, events))
			return nil
		}
		e := newError(http.StatusBadGateway, typeEngine, "stream_error", "%s", reason)
		ev := append(append([]byte("data: "), e.body(requestID(r.c))...), "\n\n"...)
		if r.cw.send(ev) == nil {
			_ = r.cw.send(doneEvent)
		}
		return nil
	}
}

var doneEvent = []byte("data: [DONE]\n\n")

// relayBufs holds the read buffers of relays: SSE events are small, and a
// thousand concurrent streams must not cost 32 KiB each.
var relayBufs = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

// egressError is the answer when the egress, not the engine, failed: the
// SOCKS server is down or refuses FLM (never followed by a direct
// connection), or a .onion engine without Tor. Nil for any other error.
// The SOCKS endpoint is FLM's configuration: it goes to the log, not to
// the client.
func (s *Server) egressError(t gateway.Target, err error) *apiError {
	name := engine.DisplayName(t.Endpoint.Kind)
	var ue *egress.UnavailableError
	if !errors.As(err, &ue) && s.opts.Egress != nil && !errors.Is(err, egress.ErrOnionDirect) && !errors.As(err, new(*egress.TargetError)) {
		// A pooled connection through a SOCKS server that went away breaks
		// with a bare reset: ask the egress whether it is the cause.
		if u, perr := url.Parse(t.Endpoint.BaseURL); perr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			cerr := s.opts.Egress.Explain(ctx, u.Hostname())
			cancel()
			errors.As(cerr, &ue)
		}
	}
	switch {
	case ue != nil:
		return newError(http.StatusBadGateway, typeEngine, "egress_unavailable", "engine %s (%s) could not be reached: FLM's SOCKS5 egress is unavailable (%s); FLM never falls back to a direct connection", t.Endpoint.ID, name, ue.Reason)
	case errors.Is(err, egress.ErrOnionDirect):
		return newError(http.StatusBadGateway, typeEngine, "egress_unavailable", "engine %s (%s) is a .onion address, reachable only through Tor: start the proxy with --egress-mode tor", t.Endpoint.ID, name)
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
//
// The engine's message is passed on without the addresses in it: engines
// quote their own internal URLs (Ollama: `Post "http://127.0.0.1:38417/
// completion": EOF`), and a key holder must not learn where FLM's engines
// live.
func engineError(t gateway.Target, resp *http.Response) *apiError {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := engineMessage(raw, t.Endpoint.BaseURL)
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
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		// An engine's 429 is the engine being busy, not the client's
		// budget: every 429 FLM sends is its own, with the X-RateLimit-*
		// headers of the bucket that refused (PRODUCT.md §6).
		e.Status, e.Type, e.Code = http.StatusServiceUnavailable, typeEngine, "engine_unavailable"
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

func engineMessage(raw []byte, baseURL string) string {
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
	msg = redactEngineText(msg, baseURL)
	if msg == "" {
		msg = "no details"
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return strings.ToValidUTF8(msg, "�")
}
