package engine

import (
	"fmt"
	"slices"
	"time"
)

// History is what the state machine remembers of an engine between checks.
type History struct {
	// Recent holds the outcomes of the last RecentChecks checks, oldest
	// first.
	Recent              []Outcome `json:"recent,omitempty"`
	ConsecutiveFailures int       `json:"consecutive_failures,omitempty"`
	// SeenRunning is true once the engine has answered as itself.
	SeenRunning bool `json:"seen_running,omitempty"`
}

// RecentChecks is the window of "429/503 in the last 3 checks".
const RecentChecks = 3

// Thresholds come from settings.
type Thresholds struct {
	// Latency at or above which a running engine is degraded.
	Latency time.Duration
	// MaxNetworkFailures consecutive failures make a running engine
	// error-network.
	MaxNetworkFailures int
}

// DefaultThresholds are PRODUCT.md §5's defaults.
var DefaultThresholds = Thresholds{Latency: 1500 * time.Millisecond, MaxNetworkFailures: 3}

// Verdict is the result of one check.
type Verdict struct {
	Status  Status
	History History
	// Present says whether the engine is shown at all: engines neither
	// installed nor running are omitted.
	Present bool
}

// Next applies one observation to an engine's history (PRODUCT.md §5):
//
//   - running-healthy: fingerprint OK, latency below the threshold, and no
//     busy answer (503 loading, 429, 503) in the last 3 checks;
//   - running-degraded: slow, busy now or within the last 3 checks, or a
//     running engine that failed fewer than MaxNetworkFailures checks in a row;
//   - error-network: an engine that was running failed MaxNetworkFailures
//     consecutive checks (unless it is installed and nothing listens any
//     more: then it was stopped, and is installed-only again);
//   - error-api: it answers, but not as that engine should (malformed
//     answers; or, for an endpoint the user declared, a foreign server);
//   - installed-only: not answering (or something else holds its port) but
//     the executable is installed;
//   - absent otherwise (Present false).
func Next(prev History, obs Observation, installed, userAdded bool, th Thresholds) Verdict {
	h := History{SeenRunning: prev.SeenRunning, ConsecutiveFailures: prev.ConsecutiveFailures}
	h.Recent = append(slices.Clone(prev.Recent), obs.Outcome)
	if len(h.Recent) > RecentChecks {
		h.Recent = h.Recent[len(h.Recent)-RecentChecks:]
	}
	ms := obs.Latency.Milliseconds()
	v := Verdict{History: h, Present: true}
	switch obs.Outcome {
	case OutcomeOK, OutcomeBusy:
		v.History.ConsecutiveFailures = 0
		v.History.SeenRunning = true
		switch {
		case obs.Outcome == OutcomeBusy:
			v.Status = Status{State: RunningDegraded, LatencyMS: ms, Reason: obs.Reason}
		case obs.Latency >= th.Latency:
			v.Status = Status{State: RunningDegraded, LatencyMS: ms, Reason: fmt.Sprintf("answered in %d ms, at or above the %d ms threshold", ms, th.Latency.Milliseconds())}
		case slices.Contains(prev.recentWindow(), OutcomeBusy):
			v.Status = Status{State: RunningDegraded, LatencyMS: ms, Reason: "busy (429/503) within the last 3 checks"}
		default:
			v.Status = Status{State: RunningHealthy, LatencyMS: ms}
		}
	case OutcomeBroken:
		v.History.ConsecutiveFailures = 0
		v.History.SeenRunning = true
		v.Status = Status{State: ErrorAPI, LatencyMS: ms, Reason: obs.Reason}
	case OutcomeForeign:
		v.History.ConsecutiveFailures = 0
		switch {
		case userAdded:
			v.Status = Status{State: ErrorAPI, LatencyMS: ms, Reason: obs.Reason}
		case installed:
			v.Status = Status{State: InstalledOnly, Reason: "installed; " + obs.Reason}
		default:
			v.Present = false
		}
	default: // OutcomeNetwork
		v.History.ConsecutiveFailures++
		n := v.History.ConsecutiveFailures
		switch {
		case prev.SeenRunning && n >= th.MaxNetworkFailures && obs.Refused && installed && !userAdded:
			// Nothing listens any more and the engine is installed: it was
			// stopped, not broken.
			v.History.SeenRunning = false
			v.Status = Status{State: InstalledOnly, Reason: "installed, not running (connection refused)", ConsecutiveFailures: n}
		case prev.SeenRunning && n >= th.MaxNetworkFailures:
			v.Status = Status{State: ErrorNetwork, Reason: obs.Reason, ConsecutiveFailures: n}
		case prev.SeenRunning:
			v.Status = Status{State: RunningDegraded, Reason: fmt.Sprintf("%s (%d of %d failed checks before error-network)", obs.Reason, n, th.MaxNetworkFailures), ConsecutiveFailures: n}
		case installed:
			v.Status = Status{State: InstalledOnly, Reason: "installed, not answering: " + obs.Reason, ConsecutiveFailures: n}
		case userAdded:
			v.Status = Status{State: ErrorNetwork, Reason: obs.Reason, ConsecutiveFailures: n}
		default:
			v.Present = false
		}
	}
	return v
}

// recentWindow is the previous checks that, with the current one, make the
// last RecentChecks.
func (h History) recentWindow() []Outcome {
	if len(h.Recent) >= RecentChecks {
		return h.Recent[len(h.Recent)-(RecentChecks-1):]
	}
	return h.Recent
}

// ErrorRate is the engine_health_logs error_rate of a state.
func ErrorRate(s StateName) float64 {
	switch s {
	case RunningDegraded:
		return 0.1
	case ErrorNetwork, ErrorAPI:
		return 1
	}
	return 0
}
