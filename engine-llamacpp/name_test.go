package llamacpp

import "testing"

func TestDisplayName(t *testing.T) {
	for in, want := range map[string]string{
		"/home/u/llm/models/tiny-chat.gguf": "tiny-chat",
		`C:\models\Qwen2.5-7B.Q4_K_M.GGUF`:  "Qwen2.5-7B.Q4_K_M",
		"tiny-chat":                         "tiny-chat",
		"org/model:Q4":                      "org/model:Q4",
		"/weird/.gguf":                      "/weird/.gguf",
	} {
		if got := displayName(in); got != want {
			t.Errorf("displayName(%q) = %q, want %q", in, got, want)
		}
	}
}
