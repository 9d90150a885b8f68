package cli

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/engine/enginetest"
)

type detected struct {
	Engines []struct {
		ID      string `json:"id"`
		Kind    string `json:"kind"`
		BaseURL string `json:"base_url"`
		Version string `json:"version"`
		Status  struct {
			State               string `json:"state"`
			LatencyMS           int64  `json:"latency_ms"`
			Reason              string `json:"reason"`
			ConsecutiveFailures int    `json:"consecutive_failures"`
		} `json:"status"`
		Capabilities map[string]bool `json:"capabilities"`
	} `json:"engines"`
}

func TestEnginesAddListRemove(t *testing.T) {
	dir := t.TempDir()
	var ep struct {
		ID, Kind, BaseURL string
		APIKeyEnv         string `json:"api_key_env"`
	}
	ok(t, dir, "engines", "add", "--kind", "vllm", "--url", "http://127.0.0.1:8001/", "--id", "vllm-b", "--api-key-env", "VLLM_KEY").data(t, &ep)
	if ep.ID != "vllm-b" || ep.APIKeyEnv != "VLLM_KEY" {
		t.Fatalf("add = %+v", ep)
	}
	var list struct {
		Engines []struct {
			ID        string `json:"id"`
			BaseURL   string `json:"base_url"`
			UserAdded bool   `json:"user_added"`
		} `json:"engines"`
	}
	ok(t, dir, "engines", "list").data(t, &list)
	if len(list.Engines) != 5 || list.Engines[4].ID != "vllm-b" || list.Engines[4].BaseURL != "http://127.0.0.1:8001" || !list.Engines[4].UserAdded {
		t.Fatalf("list = %+v", list)
	}
	for _, args := range [][]string{
		{"--kind", "vllm", "--url", "http://127.0.0.1:8002", "--id", "vllm-b"},
		{"--kind", "tgi", "--url", "http://127.0.0.1:8002"},
		{"--kind", "vllm", "--url", "not-a-url"},
		{"--kind", "vllm", "--url", "http://admin:hunter2@127.0.0.1:8002"},
		{"--kind", "vllm", "--url", "http://127.0.0.1:8002", "--api-key-env", "1x"},
	} {
		msg := fails(t, dir, 1, "INVALID_ARGUMENT", append([]string{"engines", "add"}, args...)...)
		if strings.Contains(msg, "hunter2") {
			t.Fatalf("error echoes credentials: %s", msg)
		}
	}
	ok(t, dir, "engines", "remove", "vllm-b")
	fails(t, dir, 1, "ENGINE_NOT_FOUND", "engines", "remove", "vllm-b")
	fails(t, dir, 1, "INVALID_ARGUMENT", "engines", "remove", "ollama")
	ok(t, dir, "engines", "list").data(t, &list)
	if len(list.Engines) != 4 {
		t.Fatalf("after remove: %+v", list)
	}
}

// With nothing running and a user-added endpoint that accepts connections
// and never answers, detection still returns quickly, and the black hole is
// reported, never as running.
func TestDetectNothingRunningAndBlackHole(t *testing.T) {
	dir := t.TempDir()
	hole := enginetest.BlackHole(t)
	ok(t, dir, "engines", "add", "--kind", "ollama", "--url", "http://"+hole, "--id", "hole")
	app := func(args ...string) result {
		// No engine binary is installed on this machine, as far as flm knows.
		return flmWith(t, dir, func(a *App) { a.lookPath = func(string) (string, error) { return "", errors.New("no") } }, args...)
	}
	start := time.Now()
	r := app("engines", "detect", "--fresh")
	elapsed := time.Since(start)
	if r.code != 0 {
		t.Fatalf("detect: %+v", r)
	}
	var d detected
	r.data(t, &d)
	if elapsed > 5*time.Second {
		t.Fatalf("detect took %v; the contract is 5 s", elapsed)
	}
	t.Logf("detect with a black hole took %v", elapsed)
	if len(d.Engines) != 1 || d.Engines[0].ID != "hole" || d.Engines[0].Status.State != "error-network" {
		t.Fatalf("detect = %+v", d)
	}
	fails(t, dir, 1, "ENGINE_NOT_FOUND", "engines", "detect", "--engine", "nope")
	var m struct {
		Models []any `json:"models"`
	}
	app("models", "list").data(t, &m)
	if len(m.Models) != 0 {
		t.Fatalf("models = %+v", m)
	}
}
