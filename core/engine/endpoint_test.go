package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/engine/enginetest"
	"github.com/unjuno/flm/core/flmerr"
)

func TestDefaultEndpoints(t *testing.T) {
	get := func(env map[string]string) map[string]string {
		out := map[string]string{}
		for _, ep := range engine.DefaultEndpoints(func(k string) string { return env[k] }) {
			out[ep.ID] = ep.BaseURL
		}
		return out
	}
	d := get(nil)
	want := map[string]string{"ollama": "http://127.0.0.1:11434", "vllm": "http://127.0.0.1:8000", "lmstudio": "http://127.0.0.1:1234", "llamacpp": "http://127.0.0.1:8080"}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("default %s = %s, want %s", k, d[k], v)
		}
	}
	for in, out := range map[string]string{
		"0.0.0.0:11500":          "http://127.0.0.1:11500",
		"http://192.168.1.5:1":   "http://192.168.1.5:1",
		"https://gpu.local:443/": "https://gpu.local:443",
		":11999":                 "http://127.0.0.1:11999",
		"myhost":                 "http://myhost:11434",
		"[::1]:11434":            "http://[::1]:11434",
	} {
		if got := get(map[string]string{"OLLAMA_HOST": in})["ollama"]; got != out {
			t.Errorf("OLLAMA_HOST=%s → %s, want %s", in, got, out)
		}
	}
	if got := get(map[string]string{"LLAMA_ARG_PORT": "9931"})["llamacpp"]; got != "http://127.0.0.1:9931" {
		t.Errorf("LLAMA_ARG_PORT: %s", got)
	}
	if got := get(map[string]string{"VLLM_PORT": "nope"})["vllm"]; got != "http://127.0.0.1:8000" {
		t.Errorf("bad VLLM_PORT: %s", got)
	}
}

func TestRegistry(t *testing.T) {
	ctx := context.Background()
	r := &engine.Registry{Store: &enginetest.MemEndpoints{}, Defaults: engine.DefaultEndpoints(func(string) string { return "" })}
	ep, err := r.Add(ctx, "vllm", "http://127.0.0.1:8001/", "vllm-b", "VLLM_KEY")
	if err != nil || ep.BaseURL != "http://127.0.0.1:8001" || !ep.UserAdded {
		t.Fatalf("Add = %+v, %v", ep, err)
	}
	auto, err := r.Add(ctx, "ollama", "http://10.0.0.2:11434", "", "")
	if err != nil || auto.ID != "ollama-2" {
		t.Fatalf("auto id = %+v, %v", auto, err)
	}
	bad := []struct{ kind, url, id, env string }{
		{"tgi", "http://x", "", ""},
		{"vllm", "ftp://x", "", ""},
		{"vllm", "http://user:pw@x:1", "", ""},
		{"vllm", "http://x:99999", "", ""},
		{"vllm", "http://x/?a=1", "", ""},
		{"vllm", "not a url", "", ""},
		{"vllm", "http://", "", ""},
		{"vllm", "http://x", "vllm-b", ""},
		{"vllm", "http://x", "ollama", ""},
		{"vllm", "http://x", "bad id", ""},
		{"vllm", "http://x", "", "1BAD"},
	}
	for _, b := range bad {
		if _, err := r.Add(ctx, b.kind, b.url, b.id, b.env); !flmerr.Is(err, flmerr.InvalidArgument) {
			t.Errorf("Add(%+v) = %v, want INVALID_ARGUMENT", b, err)
		}
	}
	_, err = r.Add(ctx, "vllm", "http://user:secret@x:1", "", "")
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error echoes the credentials: %v", err)
	}
	if err := r.Remove(ctx, "ollama"); !flmerr.Is(err, flmerr.InvalidArgument) {
		t.Fatalf("remove default = %v", err)
	}
	if err := r.Remove(ctx, "nope"); !flmerr.Is(err, flmerr.EngineNotFound) {
		t.Fatalf("remove unknown = %v", err)
	}
	if err := r.Remove(ctx, "vllm-b"); err != nil {
		t.Fatal(err)
	}
	all, _ := r.List(ctx)
	if len(all) != 5 || all[4].ID != "ollama-2" {
		t.Fatalf("List = %+v", all)
	}
}
