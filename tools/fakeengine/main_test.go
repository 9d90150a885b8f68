package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/unjuno/flm/tools/enginefake"
)

func TestParseFlags(t *testing.T) {
	opts, err := parseFlags([]string{"--kind", "ollama", "--models", "a, b:latest,org/x,has space", "--embed-models", "e1",
		"--ctx", "8192", "--latency", "5ms", "--ttft", "50ms", "--tps", "50", "--fail", "hang"})
	if err != nil {
		t.Fatal(err)
	}
	want := enginefake.Options{
		Kind: enginefake.Ollama, Addr: "127.0.0.1:11434", Latency: 5 * time.Millisecond, TTFT: 50 * time.Millisecond,
		TokensPerSecond: 50, Failure: enginefake.FailHang,
		Models: []enginefake.Model{{Name: "a", ContextLength: 8192}, {Name: "b:latest", ContextLength: 8192},
			{Name: "org/x", ContextLength: 8192}, {Name: "has space", ContextLength: 8192},
			{Name: "e1", Embedding: true, ContextLength: 8192}},
		NoRecord: true,
	}
	if !reflect.DeepEqual(opts, want) {
		t.Errorf("got  %+v\nwant %+v", opts, want)
	}
	for kind, port := range map[string]string{"lmstudio": "1234", "vllm": "8000", "llamacpp": "8080"} {
		opts, err := parseFlags([]string{"--kind", kind})
		if err != nil || opts.Addr != "127.0.0.1:"+port || opts.Models != nil {
			t.Errorf("%s: %+v %v", kind, opts, err)
		}
	}
	for _, bad := range [][]string{{}, {"--kind", "tgi"}, {"--kind", "vllm", "extra"}, {"--nope"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

func TestRunRejectsBadFailure(t *testing.T) {
	if err := run([]string{"--kind", "vllm", "--addr", "127.0.0.1:0", "--fail", "sometimes"}); err == nil {
		t.Error("unknown --fail accepted")
	}
}
