package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/unjuno/flm/core/flmerr"
)

// CacheTTL is how long a detection is reused without --fresh.
const CacheTTL = 300 * time.Second

// RunBudget bounds one detection run, whatever the network does; PRODUCT.md
// §5 promises 5 s, and the rest is left for bookkeeping.
const RunBudget = 4 * time.Second

// Detector detects every known endpoint concurrently and keeps each one's
// state machine (PRODUCT.md §5).
type Detector struct {
	Drivers map[Kind]Driver
	// Defaults are the default local instance of each kind.
	Defaults []Endpoint
	// Endpoints holds user-added endpoints (nil = none).
	Endpoints EndpointStore
	Cache     StateCache // nil = no cache
	Log       HealthLog  // nil = no log
	// Installed reports whether kind's executable is on this machine.
	Installed  func(Kind) bool
	Thresholds Thresholds
	Now        func() time.Time
	// Budget overrides RunBudget (tests).
	Budget time.Duration
}

// DetectOptions narrows a run.
type DetectOptions struct {
	// EngineID limits the run to one engine ("" = all).
	EngineID string
	// Fresh ignores the cache.
	Fresh bool
}

func (d *Detector) now() time.Time {
	if d.Now != nil {
		return d.Now().UTC()
	}
	return time.Now().UTC()
}

// AllEndpoints returns the defaults followed by the user-added endpoints.
func (d *Detector) AllEndpoints(ctx context.Context) ([]Endpoint, error) {
	eps := slices.Clone(d.Defaults)
	if d.Endpoints != nil {
		added, err := d.Endpoints.ListEndpoints(ctx)
		if err != nil {
			return nil, err
		}
		eps = append(eps, added...)
	}
	return eps, nil
}

// Detect returns the state of every present engine, sorted by id. Cached
// states younger than CacheTTL are reused unless opts.Fresh.
func (d *Detector) Detect(ctx context.Context, opts DetectOptions) ([]State, error) {
	eps, err := d.AllEndpoints(ctx)
	if err != nil {
		return nil, err
	}
	if opts.EngineID != "" {
		eps = slices.DeleteFunc(eps, func(ep Endpoint) bool { return ep.ID != opts.EngineID })
		if len(eps) == 0 {
			return nil, flmerr.New(flmerr.EngineNotFound, "no engine with id %q; `flm engines list` shows the known ones", clip(opts.EngineID))
		}
	}
	cached := map[string]CachedEntry{}
	if d.Cache != nil {
		if cached, err = d.Cache.LoadStates(ctx); err != nil {
			return nil, err
		}
	}
	now := d.now()
	results := make([]Cached, len(eps))
	var probe []int
	for i, ep := range eps {
		c, ok := cached[ep.ID]
		if !opts.Fresh && ok && now.Sub(c.At) < CacheTTL && now.Sub(c.At) >= 0 && c.State.BaseURL == ep.BaseURL && c.State.Kind == ep.Kind {
			results[i] = c.Cached
			continue
		}
		probe = append(probe, i)
	}

	budget := d.Budget
	if budget <= 0 {
		budget = RunBudget
	}
	pctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	var wg sync.WaitGroup
	for _, i := range probe {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = d.check(pctx, eps[i], cached[eps[i].ID].History)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	at := d.now()
	var errs []error
	for _, i := range probe {
		if d.Cache != nil {
			errs = append(errs, d.Cache.SaveState(ctx, eps[i].ID, results[i], at))
		}
		if d.Log != nil && results[i].Present {
			errs = append(errs, d.Log.AppendHealth(ctx, eps[i].ID, results[i].State.Status, at))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("record detection: %w", err)
	}
	var out []State
	for i, r := range results {
		if !r.Present {
			continue
		}
		// Habits come from the driver, also for a cached state: the cache
		// does not hold them (State.Habits is not serialised).
		if drv, ok := d.Drivers[eps[i].Kind]; ok {
			r.State.Habits = drv.Habits()
		}
		out = append(out, r.State)
	}
	slices.SortFunc(out, func(a, b State) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (d *Detector) check(ctx context.Context, ep Endpoint, prev History) Cached {
	drv, ok := d.Drivers[ep.Kind]
	st := State{ID: ep.ID, Kind: ep.Kind, Name: DisplayName(ep.Kind), BaseURL: ep.BaseURL}
	if !ok {
		st.Status = Status{State: ErrorAPI, Reason: fmt.Sprintf("no driver for kind %q", ep.Kind)}
		return Cached{State: st, Present: true, History: prev}
	}
	obs := drv.Probe(ctx, ep)
	installed := d.Installed != nil && d.Installed(ep.Kind)
	th := d.Thresholds
	if th.Latency <= 0 || th.MaxNetworkFailures <= 0 {
		th = DefaultThresholds
	}
	v := Next(prev, obs, installed, ep.UserAdded, th)
	st.Version = obs.Version
	st.Status = v.Status
	if v.Status.State == RunningHealthy || v.Status.State == RunningDegraded {
		st.Capabilities = obs.Capabilities
	}
	return Cached{State: st, Present: v.Present, History: v.History}
}

// Running reports whether a state can serve requests.
func Running(s StateName) bool { return s == RunningHealthy || s == RunningDegraded }

// DisplayName is a kind's human name.
func DisplayName(k Kind) string {
	switch k {
	case Ollama:
		return "Ollama"
	case VLLM:
		return "vLLM"
	case LMStudio:
		return "LM Studio"
	case LlamaCPP:
		return "llama.cpp"
	}
	return string(k)
}

// ListModels returns the models of every running engine among states,
// concurrently and within RunBudget. Engines whose listing fails are
// reported in the second result and skipped.
func (d *Detector) ListModels(ctx context.Context, states []State) ([]Model, map[string]error) {
	eps, err := d.AllEndpoints(ctx)
	if err != nil {
		return nil, map[string]error{"": err}
	}
	byID := map[string]Endpoint{}
	for _, ep := range eps {
		byID[ep.ID] = ep
	}
	budget := d.Budget
	if budget <= 0 {
		budget = RunBudget
	}
	lctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var models []Model
	failed := map[string]error{}
	for _, st := range states {
		ep, ok := byID[st.ID]
		drv, dok := d.Drivers[ep.Kind]
		if !ok || !dok || !Running(st.Status.State) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms, err := drv.Models(lctx, ep)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed[ep.ID] = err
				return
			}
			models = append(models, ms...)
		}()
	}
	wg.Wait()
	slices.SortFunc(models, func(a, b Model) int { return strings.Compare(a.ID, b.ID) })
	return models, failed
}
