// Package engine describes the LLM engines FLM fronts: their kinds, the
// endpoints where they listen, their detected state and their models, plus
// the flm:// model-id syntax.
//
// Engines are identified by fingerprint, never by port alone: FLM's own proxy
// defaults to llama.cpp's port 8080.
package engine

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Kind is an engine implementation.
type Kind string

// The supported kinds.
const (
	Ollama   Kind = "ollama"
	VLLM     Kind = "vllm"
	LMStudio Kind = "lmstudio"
	LlamaCPP Kind = "llamacpp"
)

// Kinds lists every supported kind.
func Kinds() []Kind { return []Kind{Ollama, VLLM, LMStudio, LlamaCPP} }

// ParseKind accepts a kind name, also in the predecessor's spellings
// (`lm-studio`, `llama-cpp`).
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "ollama":
		return Ollama, nil
	case "vllm":
		return VLLM, nil
	case "lmstudio", "lm-studio":
		return LMStudio, nil
	case "llamacpp", "llama-cpp", "llama.cpp":
		return LlamaCPP, nil
	}
	return "", fmt.Errorf("unknown engine kind %q (want ollama, vllm, lmstudio or llamacpp)", clip(s))
}

// Endpoint is where an engine instance listens.
type Endpoint struct {
	ID      string `json:"id"`
	Kind    Kind   `json:"kind"`
	BaseURL string `json:"base_url"`
	// APIKeyEnv names the environment variable holding the engine's own key
	// (vLLM --api-key, LM Studio). The key itself is never stored.
	APIKeyEnv string `json:"api_key_env,omitempty"`
	// UserAdded is false for the default local instance of a kind.
	UserAdded bool `json:"user_added"`
}

// StateName is an engine's detected state (PRODUCT.md §5).
type StateName string

// The states.
const (
	InstalledOnly   StateName = "installed-only"
	RunningHealthy  StateName = "running-healthy"
	RunningDegraded StateName = "running-degraded"
	ErrorNetwork    StateName = "error-network"
	ErrorAPI        StateName = "error-api"
)

// Status is a detection result.
type Status struct {
	State               StateName `json:"state"`
	LatencyMS           int64     `json:"latency_ms"`
	Reason              string    `json:"reason,omitempty"`
	ConsecutiveFailures int       `json:"consecutive_failures,omitempty"`
}

// Capabilities says what an engine or model can do.
type Capabilities struct {
	Chat        bool `json:"chat"`
	ChatStream  bool `json:"chat_stream"`
	Completions bool `json:"completions"`
	Embeddings  bool `json:"embeddings"`
	Tools       bool `json:"tools"`
	Vision      bool `json:"vision"`
}

// State is one engine's detected state (EngineState in PRODUCT.md §5).
type State struct {
	ID           string       `json:"id"`
	Kind         Kind         `json:"kind"`
	Name         string       `json:"name"`
	BaseURL      string       `json:"base_url"`
	Version      string       `json:"version"`
	Status       Status       `json:"status"`
	Capabilities Capabilities `json:"capabilities"`
	// Habits are the driver's declared habits, filled by the Detector on
	// every run (cached states included). They are code, not a
	// detection: they are neither printed (EngineState is PRODUCT.md's
	// contract) nor cached, so an upgraded driver's habits apply at once.
	Habits Habits `json:"-"`
}

// Model is one model of one engine (ModelInfo in PRODUCT.md §5).
type Model struct {
	ID            string       `json:"id"`
	EngineID      string       `json:"engine_id"`
	EngineKind    Kind         `json:"engine_kind"`
	Name          string       `json:"name"`
	ContextLength *int         `json:"context_length"`
	Capabilities  Capabilities `json:"capabilities"`
	// Upstream is the name the engine itself uses, when it differs from
	// Name (llama-server without --alias reports its model file's path).
	Upstream string `json:"upstream,omitempty"`
}

// UpstreamName is the name to send to the engine.
func (m Model) UpstreamName() string {
	if m.Upstream != "" {
		return m.Upstream
	}
	return m.Name
}

// Scheme prefixes every model id.
const Scheme = "flm://"

// Limits on id parts; names beyond them are not real model names.
const (
	MaxEngineIDLen  = 100
	MaxModelNameLen = 512
)

// ErrInvalidModelID is wrapped by every ParseModelID failure.
var ErrInvalidModelID = errors.New("invalid model id")

// ValidEngineID reports whether s can be an engine id: 1–100 of [A-Za-z0-9_-].
func ValidEngineID(s string) bool {
	if s == "" || len(s) > MaxEngineIDLen {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ModelID formats flm://{engineID}/{model}.
func ModelID(engineID, model string) string { return Scheme + engineID + "/" + model }

// ParseModelID splits flm://{engine}/{model} at the FIRST slash after the
// scheme: model names may themselves contain '/' and ':'.
func ParseModelID(id string) (engineID, model string, err error) {
	rest, ok := strings.CutPrefix(id, Scheme)
	if !ok {
		return "", "", fmt.Errorf("%w %q: must start with %s", ErrInvalidModelID, clip(id), Scheme)
	}
	engineID, model, ok = strings.Cut(rest, "/")
	if !ok || model == "" {
		return "", "", fmt.Errorf("%w %q: want flm://{engine}/{model}", ErrInvalidModelID, clip(id))
	}
	if !ValidEngineID(engineID) {
		return "", "", fmt.Errorf("%w %q: engine id must be 1-%d letters, digits, '_' or '-'", ErrInvalidModelID, clip(id), MaxEngineIDLen)
	}
	if err := ValidModelName(model); err != nil {
		return "", "", fmt.Errorf("%w %q: %v", ErrInvalidModelID, clip(id), err)
	}
	return engineID, model, nil
}

// ValidModelName checks a model name: valid UTF-8, no control characters,
// at most MaxModelNameLen bytes.
func ValidModelName(s string) error {
	switch {
	case s == "":
		return errors.New("model name is empty")
	case len(s) > MaxModelNameLen:
		return fmt.Errorf("model name is longer than %d bytes", MaxModelNameLen)
	case !utf8.ValidString(s):
		return errors.New("model name is not valid UTF-8")
	case strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		return errors.New("model name contains control characters")
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
