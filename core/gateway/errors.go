package gateway

import (
	"fmt"
	"strings"
)

// Kind classifies a gateway error; the proxy maps each kind to an HTTP
// status and an OpenAI error type in one place.
type Kind int

// The kinds.
const (
	// InvalidRequest: the body is not a valid request (400).
	InvalidRequest Kind = iota + 1
	// Unsupported: a parameter the target engine cannot honour and that
	// cannot be dropped without changing the meaning (400).
	Unsupported
	// ModelNotFound: no engine serves the model (404).
	ModelNotFound
	// Ambiguous: a bare model name served by several engines (400).
	Ambiguous
	// EngineUnavailable: the engine is known but not running (503).
	EngineUnavailable
)

// Error is a gateway failure with what an OpenAI error body needs.
type Error struct {
	Kind    Kind
	Message string
	// Param names the offending request field, if any.
	Param string
	// Code is OpenAI's machine-readable code (model_not_found …).
	Code string
	// Candidates are the flm:// ids an ambiguous name matches.
	Candidates []string
}

func (e *Error) Error() string { return e.Message }

func invalid(param, format string, args ...any) *Error {
	return &Error{Kind: InvalidRequest, Param: param, Code: "invalid_request", Message: fmt.Sprintf(format, args...)}
}

// quote renders user input for a message: quoted, clipped, printable.
func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return fmt.Sprintf("%q", strings.ToValidUTF8(s, "�"))
}
