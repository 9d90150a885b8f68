package egress

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
)

// ErrUnavailable is what every *UnavailableError is (errors.Is): the SOCKS
// egress cannot carry connections now. Callers branch on it.
var ErrUnavailable = errors.New("egress unavailable")

// ErrAuthRefused is what an *UnavailableError is when the SOCKS server
// refused FLM's credentials (or asked for credentials FLM does not have).
var ErrAuthRefused = errors.New("the SOCKS5 server refused the credentials")

// ErrOnionDirect refuses a .onion destination in direct mode.
var ErrOnionDirect = errors.New("a .onion address is reachable only through Tor: start the proxy with --egress-mode tor (or socks5 through a Tor SOCKS port)")

// UnavailableError says the SOCKS endpoint could not be used. Its message
// names the endpoint and why, never credentials.
type UnavailableError struct {
	Endpoint string
	Reason   string // "connection refused", "timed out", "credentials refused" …
	Err      error
}

func (e *UnavailableError) Error() string {
	return "SOCKS5 egress " + e.Endpoint + " is unavailable: " + e.Reason
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// EgressUnavailable lets packages that cannot import this one (core's
// engine client) tell an egress failure from an engine failure.
func (e *UnavailableError) EgressUnavailable() bool { return true }

// Is makes every UnavailableError ErrUnavailable, and ErrAuthRefused when
// the credentials were the problem.
func (e *UnavailableError) Is(target error) bool {
	return target == ErrUnavailable || target == ErrAuthRefused && e.Reason == reasonAuth
}

// TargetError says the SOCKS server works but could not connect to the
// destination (it answered CONNECT with a failure code).
type TargetError struct{ Err error }

func (e *TargetError) Error() string {
	return "the SOCKS5 server could not reach the destination: " + strings.TrimPrefix(lastPart(e.Err), "unknown error ")
}

func (e *TargetError) Unwrap() error { return e.Err }

const reasonAuth = "it refused FLM's credentials (" + EnvUsername + "/" + EnvPassword + ")"

// reasonOf is a short, address-free reason for a failed SOCKS dial.
func reasonOf(err error) string {
	msg := err.Error()
	var ne net.Error
	switch {
	case strings.Contains(msg, "username/password authentication failed"),
		strings.Contains(msg, "no acceptable authentication methods"),
		strings.Contains(msg, "unsupported authentication method"):
		return reasonAuth
	case strings.Contains(msg, "connection refused"):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case strings.Contains(msg, "unexpected protocol version"):
		return "it does not speak SOCKS5"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), strings.Contains(msg, "reset"):
		return "it closed the connection during the SOCKS5 handshake"
	case strings.Contains(msg, "no such host"):
		return "its host name does not resolve"
	}
	return "connection failed"
}

func lastPart(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}
