package gateway

import (
	"fmt"
	"slices"
	"strings"

	"github.com/unjuno/flm/core/engine"
)

// Target is where a request goes.
type Target struct {
	Endpoint engine.Endpoint
	// Model is the engine's own model name, sent upstream.
	Model string
	// ID is the model's flm:// id.
	ID string
	// Habits are the engine's wire habits, as its driver declares them.
	Habits engine.Habits
}

// Catalog is an immutable snapshot of the engines the proxy can reach and
// their models.
type Catalog struct {
	endpoints map[string]engine.Endpoint
	running   map[string]bool
	habits    map[string]engine.Habits // by engine id, from its state
	models    []engine.Model
	byID      map[string]engine.Model
	byName    map[string][]string // bare name → flm ids, sorted
	// aliases maps a shorter id to a model's id: an engine with
	// Habits.LatestTagAlias (Ollama) serves "llama3" as "llama3:latest",
	// and so does FLM.
	aliases map[string]string
}

// NewCatalog indexes endpoints, their detected states and the models of the
// running ones.
func NewCatalog(endpoints []engine.Endpoint, states []engine.State, models []engine.Model) *Catalog {
	c := &Catalog{
		endpoints: map[string]engine.Endpoint{}, running: map[string]bool{}, habits: map[string]engine.Habits{},
		byID: map[string]engine.Model{}, byName: map[string][]string{}, aliases: map[string]string{},
	}
	for _, ep := range endpoints {
		c.endpoints[ep.ID] = ep
	}
	for _, st := range states {
		c.running[st.ID] = engine.Running(st.Status.State)
		c.habits[st.ID] = st.Habits
	}
	for _, m := range models {
		if !c.running[m.EngineID] {
			continue
		}
		if _, dup := c.byID[m.ID]; dup {
			continue
		}
		c.models = append(c.models, m)
		c.byID[m.ID] = m
		c.byName[m.Name] = append(c.byName[m.Name], m.ID)
	}
	for _, m := range c.models {
		if short, ok := strings.CutSuffix(m.Name, ":latest"); ok && short != "" && c.habits[m.EngineID].LatestTagAlias {
			id := engine.ModelID(m.EngineID, short)
			if _, taken := c.byID[id]; !taken {
				c.aliases[id] = m.ID
				c.byName[short] = append(c.byName[short], m.ID)
			}
		}
	}
	slices.SortFunc(c.models, func(a, b engine.Model) int { return strings.Compare(a.ID, b.ID) })
	for _, ids := range c.byName {
		slices.Sort(ids)
	}
	return c
}

// Models lists the models of running engines, sorted by id.
func (c *Catalog) Models() []engine.Model { return c.models }

// Endpoint returns an endpoint by id.
func (c *Catalog) Endpoint(id string) (engine.Endpoint, bool) {
	ep, ok := c.endpoints[id]
	return ep, ok
}

// Resolve finds the engine for a request's model: an flm:// id, or a bare
// name exactly one running engine serves.
func (c *Catalog) Resolve(model string) (Target, error) {
	if strings.HasPrefix(model, engine.Scheme) {
		engineID, name, err := engine.ParseModelID(model)
		if err != nil {
			return Target{}, invalid("model", "%v", err)
		}
		ep, ok := c.endpoints[engineID]
		if !ok {
			return Target{}, &Error{Kind: ModelNotFound, Param: "model", Code: "model_not_found", Message: fmt.Sprintf("no engine with id %s", quote(engineID))}
		}
		if !c.running[engineID] {
			return Target{}, &Error{Kind: EngineUnavailable, Code: "engine_unavailable", Message: fmt.Sprintf("engine %s (%s) is not running", engineID, engine.DisplayName(ep.Kind))}
		}
		if full, ok := c.aliases[model]; ok {
			model = full
		}
		m, ok := c.byID[model]
		if !ok {
			return Target{}, &Error{Kind: ModelNotFound, Param: "model", Code: "model_not_found", Message: fmt.Sprintf("engine %s has no model %s", engineID, quote(name))}
		}
		return Target{Endpoint: ep, Model: m.UpstreamName(), ID: model, Habits: c.habits[engineID]}, nil
	}
	ids := c.byName[model]
	switch len(ids) {
	case 0:
		return Target{}, &Error{Kind: ModelNotFound, Param: "model", Code: "model_not_found", Message: fmt.Sprintf("no running engine serves model %s; GET /v1/models lists the available ones", quote(model))}
	case 1:
		m := c.byID[ids[0]]
		return Target{Endpoint: c.endpoints[m.EngineID], Model: m.UpstreamName(), ID: m.ID, Habits: c.habits[m.EngineID]}, nil
	}
	return Target{}, &Error{
		Kind: Ambiguous, Param: "model", Code: "ambiguous_model", Candidates: slices.Clone(ids),
		Message: fmt.Sprintf("model %s is served by %d engines; use one of: %s", quote(model), len(ids), strings.Join(ids, ", ")),
	}
}
