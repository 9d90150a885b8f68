package translate

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/unjuno/flm/core/flmerr"
)

// Error is a request that cannot be translated, or an engine answer that
// cannot be translated back. The proxy renders it in the client's API family
// (each sub-package has an ErrorBody); Status is the HTTP status to send.
type Error struct {
	Status int
	// Code is FLM's machine-readable code, the same as on the OpenAI path
	// (PROXY_SPEC.md): invalid_request, unsupported_parameter, not_found,
	// engine_error.
	Code string
	// Param names the offending request field, if any ("messages[2].content").
	Param   string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap gives the error a stable flmerr code: the client's to fix (4xx) or
// the engine's (5xx).
func (e *Error) Unwrap() error {
	code := flmerr.InvalidArgument
	if e.Status >= 500 {
		code = flmerr.EngineAPIError
	}
	return &flmerr.Error{Code: code, Message: e.Message}
}

// Invalid is a malformed request (400 invalid_request).
func Invalid(param, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_request", Param: param, Message: fmt.Sprintf(format, args...)}
}

// Unsupported is a well-formed request FLM cannot honour for this engine or
// model without changing its meaning (400 unsupported_parameter).
func Unsupported(param, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "unsupported_parameter", Param: param, Message: fmt.Sprintf(format, args...)}
}

// EngineError is an engine answer that cannot be translated (502).
func EngineError(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadGateway, Code: "engine_error", Message: fmt.Sprintf(format, args...)}
}

// Quote renders client input for an error message: quoted, clipped to 80
// bytes, valid UTF-8. Only names (models, tools, fields) are ever quoted,
// never prompt text.
func Quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return fmt.Sprintf("%q", strings.ToValidUTF8(s, "\uFFFD"))
}
