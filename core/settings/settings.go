// Package settings holds FLM's known configuration keys, their defaults and
// validation, the Store port that persists them, and the service the CLI and
// UI call.
//
// Only known keys can be set: a typo is refused instead of silently stored
// and never read. Values are stored as strings in their canonical form.
package settings

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/unjuno/flm/core/flmerr"
)

// Known keys.
const (
	HealthLatencyThresholdMS = "engine.health_latency_threshold_ms"
	MaxNetworkFailures       = "engine.max_network_failures"
	ProxyPort                = "proxy.port"
	ProxyBodyLimitBytes      = "proxy.body_limit_bytes"
	ProxyStreamWriteTimeoutS = "proxy.stream_write_timeout_s"
	ProxyStreamIdleTimeoutS  = "proxy.stream_idle_timeout_s"
	PreferredLanguage        = "preferred_language"
)

// Def describes one known key.
type Def struct {
	Key     string
	Default string
	Doc     string
	// parse checks a value and returns its canonical form.
	parse func(string) (string, error)
}

func intRange(lo, hi int64) func(string) (string, error) {
	return func(v string) (string, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < lo || n > hi {
			return "", fmt.Errorf("must be an integer between %d and %d", lo, hi)
		}
		return strconv.FormatInt(n, 10), nil
	}
}

func oneOf(vals ...string) func(string) (string, error) {
	return func(v string) (string, error) {
		v = strings.TrimSpace(v)
		if !slices.Contains(vals, v) {
			return "", fmt.Errorf("must be one of %s", strings.Join(vals, ", "))
		}
		return v, nil
	}
}

var defs = []Def{
	{HealthLatencyThresholdMS, "1500", "an engine answering slower than this (ms) is running-degraded", intRange(1, 600_000)},
	{MaxNetworkFailures, "3", "consecutive connection failures before an engine is error-network", intRange(1, 100)},
	{ProxyPort, "8080", "default port of `flm proxy start`", intRange(1, 65535)},
	{ProxyBodyLimitBytes, "10485760", "largest request body the proxy accepts (bytes)", intRange(1024, 1<<30)},
	{ProxyStreamWriteTimeoutS, "60", "a streaming client that accepts no bytes for this long (s) is cut off, and the engine request ends", intRange(1, 3600)},
	{ProxyStreamIdleTimeoutS, "600", "an engine that sends nothing for this long (s) during a response is given up on (covers a slow CPU's first token)", intRange(1, 86400)},
	{PreferredLanguage, "en", "language of the web UI", oneOf("en", "ja")},
}

// Defs returns every known key, sorted by key.
func Defs() []Def {
	out := slices.Clone(defs)
	slices.SortFunc(out, func(a, b Def) int { return strings.Compare(a.Key, b.Key) })
	return out
}

func lookup(key string) (Def, bool) {
	i := slices.IndexFunc(defs, func(d Def) bool { return d.Key == key })
	if i < 0 {
		return Def{}, false
	}
	return defs[i], true
}

// ErrNotFound is what a Store returns for a key it does not hold.
var ErrNotFound = errors.New("setting not found")

// Store persists settings. Implementations are safe for concurrent use and
// return ErrNotFound (possibly wrapped) from Get for a key never set.
type Store interface {
	Get(ctx context.Context, key string) (Value, error)
	Set(ctx context.Context, v Value) error
	// List returns every stored value, sorted by key.
	List(ctx context.Context) ([]Value, error)
}

// Value is one setting.
type Value struct {
	Key       string
	Value     string
	UpdatedAt time.Time // zero for a default
	Default   bool      // true when nothing was stored and Value is the default
}

// Service is the settings use case.
type Service struct {
	Store Store
	Now   func() time.Time // nil = time.Now
}

func unknown(key string) error {
	if len(key) > 100 {
		key = key[:100] + "…"
	}
	return flmerr.New(flmerr.ConfigNotSet, "unknown setting %q; `flm config list` shows the known keys", key)
}

// Get returns the stored value of a known key, or its default.
func (s *Service) Get(ctx context.Context, key string) (Value, error) {
	d, ok := lookup(key)
	if !ok {
		return Value{}, unknown(key)
	}
	v, err := s.Store.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return Value{Key: key, Value: d.Default, Default: true}, nil
	}
	return v, err
}

// Int returns a known integer setting, falling back to its default when the
// stored value no longer parses (a later version may have tightened a range).
func (s *Service) Int(ctx context.Context, key string) (int, error) {
	v, err := s.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	d, _ := lookup(key)
	if _, perr := d.parse(v.Value); perr != nil {
		v.Value = d.Default
	}
	return strconv.Atoi(v.Value)
}

// Set validates and stores a value for a known key.
func (s *Service) Set(ctx context.Context, key, value string) (Value, error) {
	d, ok := lookup(key)
	if !ok {
		return Value{}, flmerr.New(flmerr.InvalidArgument, "unknown setting %q; `flm config list` shows the known keys", clip(key))
	}
	canon, err := d.parse(value)
	if err != nil {
		return Value{}, flmerr.New(flmerr.InvalidArgument, "%s: %q %s", key, clip(value), err)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	v := Value{Key: key, Value: canon, UpdatedAt: now().UTC().Truncate(time.Millisecond)}
	if err := s.Store.Set(ctx, v); err != nil {
		return Value{}, fmt.Errorf("set %s: %w", key, err)
	}
	return v, nil
}

// List returns every known key with its stored value or default.
func (s *Service) List(ctx context.Context) ([]Value, error) {
	stored, err := s.Store.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []Value
	for _, d := range Defs() {
		i := slices.IndexFunc(stored, func(v Value) bool { return v.Key == d.Key })
		if i >= 0 {
			out = append(out, stored[i])
		} else {
			out = append(out, Value{Key: d.Key, Value: d.Default, Default: true})
		}
	}
	return out, nil
}

func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
