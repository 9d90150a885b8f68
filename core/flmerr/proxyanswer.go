package flmerr

import (
	"encoding/json"
	"net/http"
	"strings"
)

// ProxyAnswer is the error for a non-2xx answer of an FLM proxy to one of
// its own clients (flm chat, the UI's chat tester): the envelope's message
// and code, under the code a caller branches on. body is read up to the
// caller's limit; a body that is not the envelope is quoted as it is.
func ProxyAnswer(status int, body []byte) *Error {
	var env struct {
		Error struct {
			Message string `json:"message"`
			Code    any    `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &env)
	msg := env.Error.Message
	if msg == "" {
		msg = strings.TrimSpace(string(body))
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	code := EngineAPIError
	switch status {
	case http.StatusUnauthorized:
		code = APIKeyNotFound
	case http.StatusNotFound:
		code = EngineNotFound
	case http.StatusBadRequest:
		code = InvalidArgument
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		code = EngineNetworkError
	}
	if c, ok := env.Error.Code.(string); ok && c != "" {
		return New(code, "proxy answered %d (%s): %s", status, c, msg)
	}
	return New(code, "proxy answered %d: %s", status, msg)
}
