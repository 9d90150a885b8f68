package engine_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/unjuno/flm/core/engine"
)

// The Detector carries each driver's declared habits to the states it
// returns, fresh or cached, and they never reach EngineState's JSON
// (`flm engines detect`, the engines_cache rows).
func TestDetectorCarriesDriverHabits(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	llama := engine.Habits{ClosesAfterStream: true, HonoursIncludeUsage: true}
	vllm := engine.Habits{MultipleChoices: true}
	f.drivers[engine.LlamaCPP].H = llama
	f.drivers[engine.VLLM].H = vllm
	f.drivers[engine.LlamaCPP].Set(obs(engine.OutcomeOK, 1))
	f.drivers[engine.VLLM].Set(obs(engine.OutcomeBusy, 1))

	check := func(when string, got []engine.State) {
		t.Helper()
		if ids(got) != "llamacpp=running-healthy,vllm=running-degraded" {
			t.Fatalf("%s: detect = %s", when, ids(got))
		}
		if got[0].Habits != llama || got[1].Habits != vllm {
			t.Fatalf("%s: habits = %+v, %+v", when, got[0].Habits, got[1].Habits)
		}
		for _, st := range got {
			with, _ := json.Marshal(st)
			st.Habits = engine.Habits{}
			without, _ := json.Marshal(st)
			if string(with) != string(without) {
				t.Fatalf("%s: habits in EngineState JSON: %s", when, with)
			}
		}
	}
	got, err := f.det.Detect(ctx, engine.DetectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check("fresh", got)

	// What the cache stores has no habits (as after a JSON round trip).
	cached, _ := f.cache.LoadStates(ctx)
	for id, c := range cached {
		if c.State.Habits != (engine.Habits{}) {
			t.Fatalf("cache entry %s holds habits %+v", id, c.State.Habits)
		}
	}
	// A cache hit still gets them, from the driver of this binary.
	probes := f.drivers[engine.LlamaCPP].Probes
	f.now = f.now.Add(time.Second)
	got, err = f.det.Detect(ctx, engine.DetectOptions{})
	if err != nil || f.drivers[engine.LlamaCPP].Probes != probes {
		t.Fatalf("second run was not served by the cache: %v, %d probes", err, f.drivers[engine.LlamaCPP].Probes)
	}
	check("cached", got)
}
