// Package flmerr defines FLM's one typed error. Every failure a user can see
// carries a stable Code (PRODUCT.md §4); adapters map codes to exit statuses
// (cli) and HTTP statuses (proxy) in one place each.
//
// Messages are English, written for the user, and never contain a plaintext
// API key, an Authorization header or prompt text.
package flmerr

import (
	"errors"
	"fmt"
)

// Code is a stable, language-neutral error code.
type Code string

// The stable codes. Codes in the first group are the user's to fix (exit 1);
// the second group are internal failures (exit 2).
const (
	EngineNotFound     Code = "ENGINE_NOT_FOUND"
	EngineNetworkError Code = "ENGINE_NETWORK_ERROR"
	EngineAPIError     Code = "ENGINE_API_ERROR"
	EngineTimeout      Code = "ENGINE_TIMEOUT"
	ProxyAlreadyRun    Code = "PROXY_ALREADY_RUNNING"
	ProxyPortInUse     Code = "PROXY_PORT_IN_USE"
	ProxyCertFailed    Code = "PROXY_CERT_FAILED"
	ProxyACMEError     Code = "PROXY_ACME_ERROR"
	ProxyInvalidConfig Code = "PROXY_INVALID_CONFIG"
	ProxyNotRunning    Code = "PROXY_NOT_RUNNING"
	PolicyInvalid      Code = "POLICY_INVALID"
	ConfigNotSet       Code = "CONFIG_NOT_SET"
	APIKeyNotFound     Code = "API_KEY_NOT_FOUND"
	InvalidArgument    Code = "INVALID_ARGUMENT"
	DBReadOnly         Code = "DB_READ_ONLY"
	// DBKeyUnavailable: security.db's encryption key cannot be had (not in
	// the keychain, keychain locked or absent, a key that does not decrypt
	// the file). The user fixes it: unlock, import-db-key, or restore.
	DBKeyUnavailable Code = "DB_KEY_UNAVAILABLE"

	DBError         Code = "DB_ERROR"
	MigrationFailed Code = "MIGRATION_FAILED"
	IOError         Code = "IO_ERROR"
	Internal        Code = "INTERNAL"
)

// UserError reports whether the code describes something the user can fix
// (exit status 1) rather than an internal failure (exit status 2).
func (c Code) UserError() bool {
	switch c {
	case DBError, MigrationFailed, IOError, Internal:
		return false
	}
	return c != ""
}

// Error is an error with a stable code and a message for the user. Err, when
// set, is the underlying cause; it is reachable with errors.Is/As but is not
// part of the message shown to users unless the message includes it.
type Error struct {
	Code    Code
	Message string
	Err     error
}

func (e *Error) Error() string { return e.Message }

func (e *Error) Unwrap() error { return e.Err }

// New returns an *Error with a formatted message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error whose cause is err. The message is format's result
// followed by ": " and err's text.
func Wrap(err error, code Code, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if err != nil {
		msg += ": " + err.Error()
	}
	return &Error{Code: code, Message: msg, Err: err}
}

// CodeOf returns the code of the first *Error in err's chain, or Internal
// when there is none (an error nobody classified is a bug).
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return Internal
}

// Is reports whether err carries code.
func Is(err error, code Code) bool { return err != nil && CodeOf(err) == code }
