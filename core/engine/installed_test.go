package engine_test

import (
	"errors"
	"testing"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/engine/enginetest"
)

type instDriver struct {
	enginetest.Driver
	names, paths []string
}

func (d *instDriver) BinaryCandidates(string, func(string) string) ([]string, []string) {
	return d.names, d.paths
}

func TestInstalledFunc(t *testing.T) {
	drivers := map[engine.Kind]engine.Driver{
		engine.Ollama:   &instDriver{Driver: enginetest.Driver{K: engine.Ollama}, names: []string{"ollama"}},
		engine.LlamaCPP: &instDriver{Driver: enginetest.Driver{K: engine.LlamaCPP}, names: []string{"llama-server"}, paths: []string{"/opt/llama.cpp/bin/llama-server"}},
		engine.VLLM:     &enginetest.Driver{K: engine.VLLM},
	}
	lookups := 0
	look := func(n string) (string, error) {
		lookups++
		if n == "ollama" {
			return "/usr/bin/ollama", nil
		}
		return "", errors.New("not found")
	}
	exists := func(p string) bool { return p == "/opt/llama.cpp/bin/llama-server" }
	inst := engine.InstalledFunc(drivers, "linux", func(string) string { return "" }, look, exists)
	if !inst(engine.Ollama) || !inst(engine.LlamaCPP) || inst(engine.VLLM) || inst(engine.LMStudio) {
		t.Fatal("wrong installed set")
	}
	inst(engine.Ollama)
	if lookups != 2 {
		t.Fatalf("%d PATH lookups; results must be memoised", lookups)
	}
}
