package engine

import (
	"context"
	"errors"
	"time"
)

// Outcome classifies one probe of an endpoint.
type Outcome string

// The outcomes a Driver reports.
const (
	// OutcomeOK: the fingerprint matched and the engine is ready.
	OutcomeOK Outcome = "ok"
	// OutcomeBusy: the fingerprint matched but the engine said it cannot
	// serve now (llama.cpp's 503 "Loading model", 429, 503).
	OutcomeBusy Outcome = "busy"
	// OutcomeNetwork: nothing answered (refused, timeout, reset, a body
	// that never finished).
	OutcomeNetwork Outcome = "network"
	// OutcomeForeign: something answered, but not this kind of engine
	// (another server on its port, FLM's own proxy, an HTML page).
	OutcomeForeign Outcome = "foreign"
	// OutcomeBroken: the fingerprint matched, but the engine's answers are
	// not what that engine sends (malformed JSON, missing fields).
	OutcomeBroken Outcome = "broken"
)

// Observation is what a Driver saw at an endpoint.
type Observation struct {
	Outcome      Outcome
	Latency      time.Duration
	Version      string
	Capabilities Capabilities
	// Reason explains a non-OK outcome in a sentence for the user.
	Reason string
	// Refused is set for OutcomeNetwork when the connection was refused:
	// nothing listens there (the process is gone), as opposed to a timeout.
	Refused bool
}

// Driver knows one kind of engine's API. Implementations live in the
// engine-* modules.
//
// Probe and Models honour ctx (its deadline bounds the whole call, including
// a server that trickles bytes), never follow redirects, read bounded
// bodies, and are safe for concurrent use.
type Driver interface {
	Kind() Kind
	// Habits declares what this kind of engine does differently on the
	// wire. It is data about the engine's current releases, not about one
	// instance: it never probes and never changes.
	Habits() Habits
	// Probe fingerprints and times the engine at ep. It never returns an
	// error: every failure is an Outcome.
	Probe(ctx context.Context, ep Endpoint) Observation
	// Models lists ep's models with flm:// ids (engine id = ep.ID). A
	// failure is an *flmerr.Error with an ENGINE_* code.
	Models(ctx context.Context, ep Endpoint) ([]Model, error)
}

// Installer tells where a kind's executable is usually installed, so an
// engine that is installed but not running can be reported.
type Installer interface {
	// BinaryCandidates returns executable names to look up on PATH and
	// absolute paths to check, for goos, reading env for overrides.
	BinaryCandidates(goos string, env func(string) string) (names, paths []string)
}

// ErrNotFound is returned by EndpointStore for an unknown id.
var ErrNotFound = errors.New("engine endpoint not found")

// EndpointStore persists user-added endpoints. Implementations are safe for
// concurrent use; Add of an existing id fails; Remove of an unknown id
// returns ErrNotFound (possibly wrapped).
type EndpointStore interface {
	ListEndpoints(ctx context.Context) ([]Endpoint, error)
	AddEndpoint(ctx context.Context, ep Endpoint, at time.Time) error
	RemoveEndpoint(ctx context.Context, id string) error
}

// Cached is one engine's last detection, with what the state machine needs
// to remember between runs.
type Cached struct {
	State State `json:"state"`
	// Present is false when the engine was neither running nor installed:
	// remembered so the next run within the TTL does not probe again, but
	// not shown.
	Present bool    `json:"present"`
	History History `json:"history"`
}

// StateCache persists detections (engines_cache). Implementations are safe
// for concurrent use.
type StateCache interface {
	// LoadStates returns every cached entry with the time it was stored.
	LoadStates(ctx context.Context) (map[string]CachedEntry, error)
	SaveState(ctx context.Context, id string, c Cached, at time.Time) error
}

// CachedEntry is a cached detection and when it was made.
type CachedEntry struct {
	Cached
	At time.Time
}

// HealthLog records one row per probe (engine_health_logs).
type HealthLog interface {
	AppendHealth(ctx context.Context, engineID string, st Status, at time.Time) error
}

// AsError returns the observation's reason as an error.
func (o Observation) AsError() error { return errors.New(o.Reason) }
