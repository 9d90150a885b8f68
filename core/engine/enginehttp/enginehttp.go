// Package enginehttp is the HTTP plumbing the engine drivers share: a
// client that never follows redirects, bounded reads, the engine's own API
// key from its environment variable, and classification of what came back
// into the engine package's outcomes.
//
// Security: the engine key is read from the environment at request time and
// never logged or put into an error.
package enginehttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/unjuno/flm/core/engine"
)

// MaxBody bounds every body a driver reads. Model lists of hundreds of
// models fit; a 50 MB answer is not an engine talking.
const MaxBody = 4 << 20

// ErrTooLarge is returned when a body exceeds MaxBody.
var ErrTooLarge = fmt.Errorf("response is larger than %d bytes", MaxBody)

// Client sends requests to engines.
type Client struct {
	HTTP *http.Client
	// Getenv reads the variable named by Endpoint.APIKeyEnv.
	Getenv func(string) string
}

// New returns a Client with its own transport: short dial and TLS timeouts,
// no redirects, no proxy from the environment (engines are reached
// directly; egress proxies are configured explicitly elsewhere).
func New(getenv func(string) string) *Client {
	return NewWithDialer(getenv, nil)
}

// DialFunc opens a connection to addr (host:port).
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// NewWithDialer is New whose connections are opened by dial (nil = New's
// direct dialer): the proxy's egress (SOCKS5, Tor) passes its dialer, so
// detection, health checks and model lists of remote engines take the
// same path as requests.
func NewWithDialer(getenv func(string) string, dial DialFunc) *Client {
	if dial == nil {
		dial = (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	tr := &http.Transport{
		DialContext:           dial,
		TLSHandshakeTimeout:   2 * time.Second,
		ResponseHeaderTimeout: 3 * time.Second,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
		DisableCompression:    true,
	}
	return &Client{
		HTTP: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Getenv: getenv,
	}
}

// Response is a fully read, bounded response.
type Response struct {
	Status  int
	Header  http.Header
	Body    []byte
	Latency time.Duration // until the headers arrived
}

// Do sends method path (relative to ep.BaseURL) with an optional JSON body.
// A non-nil error means no complete answer arrived (network failure,
// timeout, a body that never ended, or ErrTooLarge).
func (c *Client) Do(ctx context.Context, ep engine.Endpoint, method, path string, body any) (Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Response{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(ep.BaseURL, "/")+path, rd)
	if err != nil {
		return Response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "flm")
	if ep.APIKeyEnv != "" && c.Getenv != nil {
		if key := c.Getenv(ep.APIKeyEnv); key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
	}
	start := time.Now()
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	r := Response{Status: resp.StatusCode, Header: resp.Header, Latency: time.Since(start)}
	r.Body, err = io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return r, err
	}
	if len(r.Body) > MaxBody {
		return r, ErrTooLarge
	}
	return r, nil
}

// Get is Do with GET and no body.
func (c *Client) Get(ctx context.Context, ep engine.Endpoint, path string) (Response, error) {
	return c.Do(ctx, ep, http.MethodGet, path, nil)
}

// JSON decodes r's body into dst when the status is 200 and the body is a
// UTF-8 JSON document of dst's shape.
func (r Response) JSON(dst any) error {
	if r.Status != http.StatusOK {
		return fmt.Errorf("HTTP %d", r.Status)
	}
	if !utf8.Valid(r.Body) {
		return errors.New("body is not valid UTF-8")
	}
	if err := json.Unmarshal(r.Body, dst); err != nil {
		return fmt.Errorf("body is not the expected JSON: %s", shortJSONErr(err))
	}
	return nil
}

// DecodeAny decodes the body whatever the status (error bodies).
func (r Response) DecodeAny(dst any) error {
	if !utf8.Valid(r.Body) {
		return errors.New("body is not valid UTF-8")
	}
	return json.Unmarshal(r.Body, dst)
}

func shortJSONErr(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// Describe is err's text, or fallback when err is nil (a body that decoded
// but lacked what was needed).
func Describe(err error, fallback string) string {
	if err != nil {
		return err.Error()
	}
	return fallback
}

// NetworkObservation turns a transport error into an observation. Oversize
// bodies are not network failures: something answered, just not an engine.
func NetworkObservation(err error) engine.Observation {
	if errors.Is(err, ErrTooLarge) {
		return engine.Observation{Outcome: engine.OutcomeForeign, Reason: err.Error()}
	}
	reason, refused := "no answer", false
	var ne net.Error
	var eu egressError
	switch {
	case errors.As(err, &eu) && eu.EgressUnavailable():
		// The engine was not contacted: its state says why.
		reason = eu.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		reason = "timed out"
	case strings.Contains(err.Error(), "connection refused"):
		reason, refused = "connection refused", true
	case strings.Contains(err.Error(), "connection reset"), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		reason = "connection reset"
	}
	return engine.Observation{Outcome: engine.OutcomeNetwork, Reason: reason, Refused: refused}
}

// egressError is a dial error of the egress (proxy/egress) that means the
// SOCKS proxy, not the engine, failed.
type egressError interface {
	error
	EgressUnavailable() bool
}

// Foreign is the observation for a server that is not the expected engine.
func Foreign(kind engine.Kind, why string) engine.Observation {
	return engine.Observation{Outcome: engine.OutcomeForeign, Reason: fmt.Sprintf("the server there is not %s (%s)", engine.DisplayName(kind), why)}
}

// Broken is the observation for an engine whose answers are malformed.
func Broken(kind engine.Kind, latency time.Duration, format string, args ...any) engine.Observation {
	return engine.Observation{Outcome: engine.OutcomeBroken, Latency: latency, Reason: engine.DisplayName(kind) + " answered unexpectedly: " + fmt.Sprintf(format, args...)}
}
