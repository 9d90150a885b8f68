package engine

import (
	"errors"
	"strings"
	"testing"
)

func TestParseModelID(t *testing.T) {
	good := []struct{ in, engine, model string }{
		{"flm://llamacpp/org/model:Q4", "llamacpp", "org/model:Q4"},
		{"flm://ollama/llama3:latest", "ollama", "llama3:latest"},
		{"flm://vllm-b/meta-llama/Llama-3.1-8B-Instruct", "vllm-b", "meta-llama/Llama-3.1-8B-Instruct"},
		{"flm://lmstudio/モデル name", "lmstudio", "モデル name"},
	}
	for _, tc := range good {
		e, m, err := ParseModelID(tc.in)
		if err != nil || e != tc.engine || m != tc.model {
			t.Errorf("ParseModelID(%q) = %q, %q, %v", tc.in, e, m, err)
		}
		if ModelID(e, m) != tc.in {
			t.Errorf("ModelID round trip of %q = %q", tc.in, ModelID(e, m))
		}
	}
	for _, bad := range []string{"", "llama3", "flm://", "flm://ollama", "flm://ollama/", "flm:///model", "flm://bad engine/m", "flm://e/a\nb", "flm://e/" + strings.Repeat("m", 600), "flm://e/\xff", "FLM://ollama/x", "flm://" + strings.Repeat("e", 101) + "/m"} {
		if _, _, err := ParseModelID(bad); !errors.Is(err, ErrInvalidModelID) {
			t.Errorf("ParseModelID(%.40q) = %v, want ErrInvalidModelID", bad, err)
		}
	}
}

func TestParseKind(t *testing.T) {
	for in, want := range map[string]Kind{"ollama": Ollama, "VLLM": VLLM, "lm-studio": LMStudio, "lmstudio": LMStudio, "llama-cpp": LlamaCPP, "llamacpp": LlamaCPP} {
		if k, err := ParseKind(in); k != want || err != nil {
			t.Errorf("ParseKind(%q) = %q, %v", in, k, err)
		}
	}
	if _, err := ParseKind("tgi"); err == nil {
		t.Error("ParseKind(tgi) succeeded")
	}
	if len(Kinds()) != 4 {
		t.Error("four kinds expected")
	}
}

func FuzzParseModelID(f *testing.F) {
	for _, s := range []string{"flm://llamacpp/org/model:Q4", "flm://a/b", "flm://", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, m, err := ParseModelID(s)
		if err != nil {
			return
		}
		if !ValidEngineID(e) || strings.Contains(e, "/") || ModelID(e, m) != s {
			t.Fatalf("ParseModelID(%q) = %q, %q", s, e, m)
		}
	})
}
