package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/unjuno/flm/core/gateway"
)

// apiError is an error the proxy answers with OpenAI's error shape:
// {"error":{"message","type","param","code","request_id"}}.
type apiError struct {
	Status  int
	Type    string
	Code    string
	Param   string
	Message string
	// Header is set on the response (Retry-After, WWW-Authenticate …).
	Header http.Header
}

func (e *apiError) Error() string   { return e.Message }
func (e *apiError) StatusCode() int { return e.Status }

// OpenAI error types.
const (
	typeInvalid   = "invalid_request_error"
	typeAuth      = "authentication_error"
	typeForbidden = "permission_error"
	typeNotFound  = "not_found_error"
	typeRate      = "rate_limit_error"
	typeServer    = "server_error"
	typeEngine    = "engine_error"
)

func newError(status int, typ, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Type: typ, Code: code, Message: fmt.Sprintf(format, args...)}
}

// fromGateway maps the gateway's error kinds to HTTP: the one place where
// that happens.
func fromGateway(err error) *apiError {
	var ge *gateway.Error
	if !errors.As(err, &ge) {
		return newError(http.StatusInternalServerError, typeServer, "internal_error", "internal error")
	}
	e := &apiError{Message: ge.Message, Param: ge.Param, Code: ge.Code}
	switch ge.Kind {
	case gateway.InvalidRequest, gateway.Unsupported, gateway.Ambiguous:
		e.Status, e.Type = http.StatusBadRequest, typeInvalid
	case gateway.ModelNotFound:
		e.Status, e.Type = http.StatusNotFound, typeNotFound
	case gateway.EngineUnavailable:
		e.Status, e.Type = http.StatusServiceUnavailable, typeEngine
		e.Header = http.Header{"Retry-After": {"5"}}
	default:
		e.Status, e.Type = http.StatusInternalServerError, typeServer
	}
	return e
}

type envelope struct {
	Error envelopeBody `json:"error"`
}

type envelopeBody struct {
	Message   string  `json:"message"`
	Type      string  `json:"type"`
	Param     *string `json:"param"`
	Code      string  `json:"code"`
	RequestID string  `json:"request_id"`
}

func (e *apiError) body(requestID string) []byte {
	var param *string
	if e.Param != "" {
		param = &e.Param
	}
	b, _ := json.Marshal(envelope{envelopeBody{Message: e.Message, Type: e.Type, Param: param, Code: e.Code, RequestID: requestID}})
	return b
}

// errorHandler is Echo's central error handler: every error becomes the
// error shape of the path's API family (familyOf), with the request id
// where the shape has one: OpenAI's envelope, Anthropic's error object
// for /v1/messages*, Ollama's {"error":"…"} for /api/*. Refusals by the
// middleware (401, 403, 404, 413, 429) come in the same shape as the
// handler's own errors, so each family's SDK raises its own error types.
func (s *Server) errorHandler(c *echo.Context, err error) {
	if r, _ := echo.UnwrapResponse(c.Response()); r != nil && r.Committed {
		return
	}
	var ae *apiError
	if !errors.As(err, &ae) {
		var sc echo.HTTPStatusCoder
		status := http.StatusInternalServerError
		if errors.As(err, &sc) && sc.StatusCode() != 0 {
			status = sc.StatusCode()
		}
		switch status {
		case http.StatusNotFound:
			ae = newError(status, typeNotFound, "not_found", "%s", notFoundMessage(c.Request().URL.Path))
		case http.StatusMethodNotAllowed:
			ae = newError(status, typeInvalid, "method_not_allowed", "method not allowed on this endpoint")
		case http.StatusRequestEntityTooLarge:
			ae = newError(status, typeInvalid, "payload_too_large", "request body too large")
		default:
			s.log.Error("unhandled error", "request_id", requestID(c), "err", err.Error())
			ae = newError(http.StatusInternalServerError, typeServer, "internal_error", "internal error")
		}
	}
	h := c.Response().Header()
	for k, v := range ae.Header {
		h[k] = v
	}
	h.Set("Content-Type", "application/json")
	c.Response().WriteHeader(ae.Status)
	_, _ = c.Response().Write(ae.familyBody(familyOf(c.Request().URL.Path), requestID(c)))
}

func retryAfter(secs int) http.Header {
	return http.Header{"Retry-After": {strconv.Itoa(max(secs, 1))}}
}

// urlPattern is a URL with a scheme (http://…, ws://…, unix://…).
var urlPattern = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s"'<>` + "`" + `]+`)

// redactAddrs removes from an engine's message what would tell a key
// holder where FLM's engines live: URLs, the endpoint's host (a name or an
// address, with or without its port) and every IP address (with or
// without a port, IPv6 bracketed or not).
func redactAddrs(msg, baseURL string) string {
	msg = urlPattern.ReplaceAllStringFunc(msg, func(u string) string {
		// Punctuation after a URL in prose is not part of it.
		return "<url>" + u[len(strings.TrimRight(u, ".,;:!?)]}")):]
	})
	if u, err := url.Parse(baseURL); err == nil && u.Host != "" {
		msg = strings.ReplaceAll(msg, u.Host, "<address>")
		// A host name alone too (an address alone is found below; a bare
		// replace of it would leave a port behind).
		if h := u.Hostname(); h != "" && !strings.EqualFold(h, "localhost") && !isAddr(h) {
			msg = strings.ReplaceAll(msg, h, "<address>")
		}
	}
	var b strings.Builder
	for len(msg) > 0 {
		i := strings.IndexFunc(msg, tokenSep)
		tok, sep := msg, ""
		if i >= 0 {
			tok, sep, msg = msg[:i], msg[i:i+1], msg[i+1:]
		} else {
			msg = ""
		}
		if core := strings.TrimRight(tok, ".;:!?"); isAddr(core) || isHostPort(core) {
			b.WriteString("<address>")
			tok = tok[len(core):]
		}
		b.WriteString(tok)
		b.WriteString(sep)
	}
	return b.String()
}

func tokenSep(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '"', '\'', '`', ',', '(', ')', '<', '>', '=', '/':
		return true
	}
	return false
}

// isHostPort reports a host name with a port ("localhost:11434",
// "gpu-box.lan:8000").
func isHostPort(s string) bool {
	host, port, ok := strings.Cut(s, ":")
	if !ok || host == "" || !portSuffix(":"+port) {
		return false
	}
	letter := false
	for _, c := range host {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letter = true
		case c >= '0' && c <= '9', c == '.', c == '-':
		default:
			return false
		}
	}
	return letter
}

// isAddr reports an IP address, optionally with a port (IPv6 then in
// brackets) or a zone.
func isAddr(s string) bool {
	if len(s) < 2 {
		return false
	}
	if _, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return true
	}
	_, err := netip.ParseAddrPort(s)
	return err == nil
}

// notFoundMessage answers an unknown path: what FLM serves, in the terms of
// the path's family.
func notFoundMessage(path string) string {
	switch {
	case strings.HasPrefix(path, "/v1/responses/"):
		return "no such endpoint; FLM stores no responses, so they cannot be retrieved, listed or deleted: POST /v1/responses answers statelessly"
	case familyOf(path) == familyAnthropic:
		return "no such endpoint; FLM serves POST /v1/messages and /v1/messages/count_tokens of Anthropic's API"
	case familyOf(path) == familyOllama:
		return "no such endpoint; FLM serves Ollama's /api/version, /api/tags, /api/show, /api/chat, /api/generate, /api/embed and /api/embeddings (its admin routes stay denied)"
	}
	return "no such endpoint; FLM serves GET /v1/models, POST /v1/chat/completions, /v1/completions, /v1/embeddings and /v1/responses, Anthropic's POST /v1/messages and Ollama's /api/*"
}
