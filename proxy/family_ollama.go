package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/gateway"
	"github.com/unjuno/flm/core/translate"
	"github.com/unjuno/flm/core/translate/ollamaapi"
)

// The Ollama-API facade (PROXY_SPEC.md, "Ollama API"): Ollama's own
// routes, answered for every engine kind by translating them to the
// engine's OpenAI routes (core/translate/ollamaapi) — for Ollama engines
// too, so that every engine behaves alike and an engine only ever sees
// fields FLM understood (keep_alive, num_ctx or num_gpu cannot make a
// shared Ollama unload or reload its models). Keys, scopes, limits and
// audit are those of the OpenAI routes; errors are Ollama's
// {"error":"…"} (the central error handler renders the family's shape).
// Ollama's admin routes (pull, push, create, delete, copy, blobs, ps …)
// are not registered: they are 404 before any key is asked for.

// Content types of Ollama's answers.
const (
	ollamaJSON   = "application/json; charset=utf-8"
	ollamaNDJSON = "application/x-ndjson"
)

func (s *Server) ollamaVersion(c *echo.Context) error {
	return writeJSON(c, ollamaapi.Version(ollamaapi.APIVersion))
}

// ollamaTags lists the models the key may use, named so that each name
// routes back to its model (ollamaapi.Name decides over the whole
// catalog, not only what the key sees).
func (s *Server) ollamaTags(c *echo.Context) error {
	all := s.snap.Load().catalog.Models()
	return writeJSON(c, ollamaapi.Tags(visibleModels(keyRecord(c), all), all))
}

func (s *Server) ollamaShow(c *echo.Context) error {
	body, err := readFamilyBody(c, s.opts.BodyLimit)
	if err != nil {
		return err
	}
	name, err := ollamaapi.ParseShow(body)
	if err != nil {
		return fromTranslate(err)
	}
	_, m, err := s.ollamaTarget(c, name)
	if err != nil {
		return err
	}
	return writeJSON(c, ollamaapi.Show(m))
}

func (s *Server) ollamaChat(c *echo.Context) error {
	start := time.Now()
	body, err := readFamilyBody(c, s.opts.BodyLimit)
	if err != nil {
		return err
	}
	req, err := ollamaapi.ParseChat(body)
	if err != nil {
		return fromTranslate(err)
	}
	t, m, err := s.ollamaTarget(c, req.Model)
	if err != nil {
		return err
	}
	var env translate.Env
	switch {
	case req.Unload:
		return fromTranslate(ollamaapi.UnloadUnsupported())
	case req.LoadOnly:
		return writeJSON(c, req.LoadResponse(env))
	}
	out, err := req.ChatBody(translate.Target{Model: t.Model, Caps: m.Capabilities})
	if err != nil {
		return fromTranslate(err)
	}
	return s.relayTranslated(c, t, translated{
		path: translate.ChatPath, body: out, stream: req.Stream,
		answer:    func(b []byte) ([]byte, error) { return req.Response(b, env, start) },
		newStream: func() translate.Stream { return req.NewStream(env, start) },
	})
}

func (s *Server) ollamaGenerate(c *echo.Context) error {
	start := time.Now()
	body, err := readFamilyBody(c, s.opts.BodyLimit)
	if err != nil {
		return err
	}
	req, err := ollamaapi.ParseGenerate(body)
	if err != nil {
		return fromTranslate(err)
	}
	t, m, err := s.ollamaTarget(c, req.Model)
	if err != nil {
		return err
	}
	var env translate.Env
	switch {
	case req.Unload:
		return fromTranslate(ollamaapi.UnloadUnsupported())
	case req.LoadOnly:
		return writeJSON(c, req.LoadResponse(env))
	}
	out, err := req.Body(translate.Target{Model: t.Model, Caps: m.Capabilities})
	if err != nil {
		return fromTranslate(err)
	}
	return s.relayTranslated(c, t, translated{
		path: req.Path(), body: out, stream: req.Stream,
		answer:    func(b []byte) ([]byte, error) { return req.Response(b, env, start) },
		newStream: func() translate.Stream { return req.NewStream(env, start) },
	})
}

// ollamaEmbed serves /api/embed and, with legacy, /api/embeddings.
func (s *Server) ollamaEmbed(legacy bool) echo.HandlerFunc {
	parse := ollamaapi.ParseEmbed
	if legacy {
		parse = ollamaapi.ParseEmbeddings
	}
	return func(c *echo.Context) error {
		start := time.Now()
		body, err := readFamilyBody(c, s.opts.BodyLimit)
		if err != nil {
			return err
		}
		req, err := parse(body)
		if err != nil {
			return fromTranslate(err)
		}
		t, m, err := s.ollamaTarget(c, req.Model)
		if err != nil {
			return err
		}
		if req.LoadOnly {
			return writeJSON(c, req.LoadResponse())
		}
		out, err := req.EmbeddingsBody(translate.Target{Model: t.Model, Caps: m.Capabilities})
		if err != nil {
			return fromTranslate(err)
		}
		var env translate.Env
		return s.relayTranslated(c, t, translated{
			path: translate.EmbeddingsPath, body: out,
			answer: func(b []byte) ([]byte, error) { return req.Response(b, env, start) },
		})
	}
}

// ollamaTarget routes an Ollama request's model — a bare name (Ollama's
// implicit :latest included) or an flm:// id — and checks the key's scope
// against the model it resolved to. An unknown model is answered in
// Ollama's own words, which Ollama clients show and match on.
func (s *Server) ollamaTarget(c *echo.Context, name string) (gateway.Target, engine.Model, error) {
	t, err := s.resolve(c.Request().Context(), name)
	if err != nil {
		var ge *gateway.Error
		if errors.As(err, &ge) && ge.Kind == gateway.ModelNotFound {
			nf := ollamaapi.ModelNotFound(name)
			return t, engine.Model{}, &apiError{Status: nf.Status, Type: typeNotFound, Code: nf.Code, Param: "model", Message: nf.Message}
		}
		return t, engine.Model{}, fromGateway(err)
	}
	if err := s.checkScope(c, keyRecord(c), t.ID); err != nil {
		return t, engine.Model{}, err
	}
	m, ok := s.catalogModel(t.ID)
	if !ok { // the catalog changed between the two reads
		m = engine.Model{ID: t.ID, EngineID: t.Endpoint.ID, EngineKind: t.Endpoint.Kind, Name: t.Model}
	}
	return t, m, nil
}

// catalogModel finds a model of the current catalog by id.
func (s *Server) catalogModel(id string) (engine.Model, bool) {
	models := s.snap.Load().catalog.Models() // sorted by id
	i, ok := slices.BinarySearchFunc(models, id, func(m engine.Model, id string) int { return strings.Compare(m.ID, id) })
	if !ok {
		return engine.Model{}, false
	}
	return models[i], true
}

// fromTranslate maps a request (or answer) the translation refused to
// the proxy's error; the central handler renders it in the route's API
// family.
func fromTranslate(err error) error {
	var te *translate.Error
	if !errors.As(err, &te) {
		return newError(http.StatusInternalServerError, typeServer, "internal_error", "internal error")
	}
	e := &apiError{Status: te.Status, Code: te.Code, Param: te.Param, Message: te.Message}
	switch {
	case te.Status == http.StatusNotFound:
		e.Type = typeNotFound
	case te.Status >= 500:
		e.Type = typeEngine
	default:
		e.Type = typeInvalid
	}
	return e
}

func writeJSON(c *echo.Context, body []byte) error {
	c.Response().Header().Set("Content-Type", ollamaJSON)
	c.Response().WriteHeader(http.StatusOK)
	_, err := c.Response().Write(body)
	return err
}

// translated is a client request translated to one of the engine's
// OpenAI routes, and how the engine's answer is translated back. It
// serves every translated API family.
type translated struct {
	path   string // the engine's route (translate.ChatPath …)
	body   []byte
	stream bool
	// answer translates a whole (non-streamed) answer, sent as
	// answerType (default: Ollama's JSON).
	answer     func(engine []byte) ([]byte, error)
	answerType string
	// newStream converts a streamed answer, sent as streamType (default:
	// NDJSON). An engine that answers a stream request with a whole
	// answer gets it translated by answer and sent as streamType with
	// wholeAsStream applied (default: as one NDJSON line, which is what
	// Ollama's last line of a stream is).
	newStream     func() translate.Stream
	streamType    string
	wholeAsStream func([]byte) []byte
}

// maxAnswer bounds a whole answer FLM reads to translate (a batch of
// embeddings is the largest).
const maxAnswer = 128 << 20

// relayTranslated sends tr to the engine and relays its answer
// translated, with the deadlines of the plain relay: each wait for the
// engine bounded by the idle timeout, each write to the client by the
// write timeout.
func (s *Server) relayTranslated(c *echo.Context, t gateway.Target, tr translated) error {
	r, resp, err := s.open(c, tr.path, tr.stream, t, tr.body)
	if r == nil {
		return err
	}
	defer r.close(resp)
	streamType := tr.streamType
	if streamType == "" {
		streamType = ollamaNDJSON
	}
	if tr.stream && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return r.streamTranslated(resp.Body, tr.newStream(), streamType)
	}
	raw, err := r.readAnswer(resp.Body)
	if err != nil {
		if errors.Is(err, errClientGone) {
			return nil
		}
		return err
	}
	out, err := tr.answer(raw)
	if err != nil {
		s.metrics.upstreamErrs.WithLabelValues(t.Endpoint.ID, "untranslatable").Inc()
		s.log.Warn("engine answer not translatable", "request_id", requestID(c), "engine", t.Endpoint.ID, "err", err.Error())
		if !tr.stream || tr.wholeAsStream == nil {
			return fromTranslate(err)
		}
	}
	ct := tr.answerType
	if ct == "" {
		ct = ollamaJSON
	}
	if tr.stream {
		ct = streamType
		if tr.wholeAsStream != nil {
			out = tr.wholeAsStream(out)
		} else {
			out = append(out, '\n')
		}
	}
	w := c.Response()
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	if err := r.cw.write(out); err != nil {
		return r.clientFailed(err)
	}
	return nil
}

// readAnswer reads a whole answer (body as relay.open returns it: each
// read a wait bounded by the idle timeout). A cut or oversized answer is a 502 (nothing has been
// sent to the client yet); errClientGone when the client left.
func (r *relay) readAnswer(body io.Reader) ([]byte, error) {
	var b bytes.Buffer
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf) // bounded by the idle watch (relay.open)
		b.Write(buf[:n])
		if b.Len() > maxAnswer {
			r.s.metrics.upstreamErrs.WithLabelValues(r.t.Endpoint.ID, "too_large").Inc()
			return nil, newError(http.StatusBadGateway, typeEngine, "engine_error", "the engine's answer is larger than %d MiB", maxAnswer>>20)
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			return b.Bytes(), nil
		case r.c.Request().Context().Err() != nil:
			return nil, errClientGone
		case context.Cause(r.ctx) == errEngineIdle:
			r.s.metrics.relayTimeouts.WithLabelValues("engine_idle").Inc()
			r.s.metrics.upstreamErrs.WithLabelValues(r.t.Endpoint.ID, "idle").Inc()
			return nil, newError(http.StatusGatewayTimeout, typeEngine, "engine_timeout", "the engine sent nothing for %s; FLM ended the request", r.idle.d)
		}
		r.s.metrics.upstreamErrs.WithLabelValues(r.t.Endpoint.ID, "broken").Inc()
		return nil, newError(http.StatusBadGateway, typeEngine, "engine_error", "the engine's answer broke: %s", transportReason(err))
	}
}

// errStopStream ends the reading of a translated stream.
var errStopStream = errors.New("stream ended")

// streamTranslated converts an engine's event stream with st and writes
// what st returns for each event, flushed at once (whole NDJSON lines or
// SSE events, never batched, never split). A stream that breaks, stalls
// or ends early gets the family's error event (st.Fail / st.End), so a
// client never mistakes a cut answer for a whole one.
func (r *relay) streamTranslated(body io.Reader, st translate.Stream, contentType string) error {
	w := r.c.Response()
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := r.cw.flush(); err != nil {
		return r.clientFailed(err)
	}
	r.s.metrics.activeStreams.Inc()
	defer r.s.metrics.activeStreams.Dec()

	var dec translate.SSEDecoder
	out := make([]byte, 0, 1024)
	var werr error
	send := func(b []byte) {
		if len(b) > 0 && werr == nil {
			werr = r.cw.send(b)
		}
	}
	feed := func(data []byte) error {
		// An engine's error event quotes its internal URLs; the family's
		// error event built from it must not (redactErrorData).
		if red, ok := redactErrorData(data, r.t.Endpoint.BaseURL); ok {
			data = red
		}
		var err error
		out, err = st.Feed(out[:0], data)
		send(out)
		if err != nil {
			r.s.metrics.upstreamErrs.WithLabelValues(r.t.Endpoint.ID, "untranslatable").Inc()
			r.s.log.Warn("engine stream not translatable", "request_id", requestID(r.c), "engine", r.t.Endpoint.ID, "err", err.Error())
		}
		if werr != nil || st.Done() {
			return errStopStream
		}
		return nil
	}
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf) // bounded by the idle watch (relay.open)
		if n > 0 {
			ferr := dec.Feed(buf[:n], feed)
			switch {
			case werr != nil:
				return r.clientFailed(werr)
			case st.Done():
				r.drain(body)
				return nil
			case ferr != nil: // an event over translate.MaxEvent
				r.s.metrics.upstreamErrs.WithLabelValues(r.t.Endpoint.ID, "broken").Inc()
				send(st.Fail(out[:0], http.StatusBadGateway, "the engine sent an event longer than 1 MiB; FLM ended the stream"))
				return nil
			}
		}
		if err == nil {
			continue
		}
		if r.c.Request().Context().Err() != nil {
			return nil // the client went away; its context ended the engine request
		}
		kind, reason := "broken", ""
		switch {
		case errors.Is(err, io.EOF):
		case context.Cause(r.ctx) == errEngineIdle:
			kind, reason = "idle", fmt.Sprintf("the engine sent nothing for %s; FLM ended the stream", r.idle.d)
			r.s.metrics.relayTimeouts.WithLabelValues("engine_idle").Inc()
		default:
			reason = "the engine's stream broke: " + transportReason(err)
		}
		r.s.metrics.upstreamErrs.WithLabelValues(r.t.Endpoint.ID, kind).Inc()
		if reason == "" {
			send(st.End(out[:0])) // completes a stream whose finish was seen, else an error event
		} else {
			send(st.Fail(out[:0], http.StatusBadGateway, reason))
		}
		if werr != nil {
			return r.clientFailed(werr)
		}
		return nil
	}
}
