package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

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
// envelope, with the request id.
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
			ae = newError(status, typeNotFound, "not_found", "no such endpoint; FLM serves GET /v1/models, POST /v1/chat/completions, /v1/completions and /v1/embeddings")
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
	_, _ = c.Response().Write(ae.body(requestID(c)))
}

func retryAfter(secs int) http.Header {
	return http.Header{"Retry-After": {strconv.Itoa(max(secs, 1))}}
}
