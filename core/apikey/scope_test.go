package apikey_test

import (
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/policy"
)

func TestAllowsModel(t *testing.T) {
	tests := []struct {
		scope string
		id    string
		want  bool
	}{
		// Exact ids match only themselves: no prefix matching.
		{"flm://ollama/llama3:latest", "flm://ollama/llama3:latest", true},
		{"flm://ollama/llama3", "flm://ollama/llama3:latest", false},
		{"flm://ollama/llama3:latest", "flm://ollama/llama3", false},
		{"flm://ollama/llama3", "flm://ollama-b/llama3", false},
		{"flm://ollama/llama3", "flm://OLLAMA/llama3", false},
		{"flm://ollama/Llama3", "flm://ollama/llama3", false},
		// '*' spans any run, '/' and ':' included.
		{"flm://ollama/llama3*", "flm://ollama/llama3", true},
		{"flm://ollama/llama3*", "flm://ollama/llama3:8b-instruct-q4_K_M", true},
		{"flm://ollama/llama3*", "flm://ollama/llama3.1:8b", true},
		{"flm://ollama/llama3*", "flm://ollama/llama2:7b", false},
		{"flm://ollama/llama3*", "flm://llamacpp/llama3", false},
		{"flm://ollama/*", "flm://ollama/hf.co/org/repo:Q4_K_M", true},
		{"flm://ollama/*", "flm://ollama-b/x", false},
		{"flm://ollama*", "flm://ollama-b/x", true},
		{"flm://vllm/meta-llama/*", "flm://vllm/meta-llama/Llama-3.1-8B-Instruct", true},
		{"flm://vllm/meta-llama/*", "flm://vllm/mistralai/Mistral-7B", false},
		{"flm://*/tiny-chat", "flm://llamacpp/tiny-chat", true},
		{"flm://*/tiny-chat", "flm://llamacpp/org/tiny-chat", true},
		{"flm://*/tiny-chat", "flm://llamacpp/tiny-chat-2", false},
		{"flm://*", "flm://anything/at/all", true},
		{"flm://*/*:Q4*", "flm://llamacpp/org/model:Q4_K_M", true},
		{"flm://*/*:Q4*", "flm://llamacpp/org/model:Q8_0", false},
		{"flm://llamacpp/*.gguf", "flm://llamacpp/C:\\models\\tiny.gguf", true},
		{"flm://llamacpp/C:\\models\\*", "flm://llamacpp/C:\\models\\tiny.gguf", true},
		// '?' is exactly one character, a multi-byte one too.
		{"flm://llamacpp/model-?b", "flm://llamacpp/model-7b", true},
		{"flm://llamacpp/model-?b", "flm://llamacpp/model-13b", false},
		{"flm://llamacpp/model-?b", "flm://llamacpp/model-b", false},
		{"flm://lmstudio/モデル?", "flm://lmstudio/モデル名", true},
		{"flm://lmstudio/モデ?名", "flm://lmstudio/モデル名", true},
		{"flm://lmstudio/モデル??", "flm://lmstudio/モデル名", false},
		{"flm://lmstudio/*名", "flm://lmstudio/モデル名", true},
		{"flm://lmstudio/*ル", "flm://lmstudio/モデル名", false},
		// A '*' in a model name: there is no escape, so a wildcard covers it.
		{"flm://vllm/a*b", "flm://vllm/a*b", true},
		{"flm://vllm/a*b", "flm://vllm/aXb", true},
		{"flm://vllm/a?b", "flm://vllm/a*b", true},
		{"flm://vllm/a?b", "flm://vllm/a**b", false},
		// Several stars, and backtracking past a false start.
		{"flm://x/*a*b*c", "flm://x/aaabbbaaaccc", true},
		{"flm://x/*a*b*c", "flm://x/aaabbbaaa", false},
		{"flm://x/a**b", "flm://x/ab", true},
		{"flm://x/*ab", "flm://x/aab", true},
		// Not ids at all.
		{"flm://ollama/*", "", false},
		{"flm://ollama/*", "llama3", false},
		{"flm://*", "flm:/", false},
	}
	for _, tc := range tests {
		r := apikey.Record{Models: []string{tc.scope}}
		if got := r.AllowsModel(tc.id); got != tc.want {
			t.Errorf("scope %q, id %q: AllowsModel = %v, want %v", tc.scope, tc.id, got, tc.want)
		}
	}
}

func TestAllowsModelLists(t *testing.T) {
	id := "flm://ollama/llama3:latest"
	if !(apikey.Record{}).AllowsModel(id) || !(apikey.Record{Models: []string{}}).AllowsModel(id) {
		t.Fatal("a key without scopes must allow every model")
	}
	r := apikey.Record{Models: []string{"flm://llamacpp/tiny-chat", "flm://ollama/llama3*"}}
	if !r.AllowsModel(id) || !r.AllowsModel("flm://llamacpp/tiny-chat") || r.AllowsModel("flm://vllm/qwen") {
		t.Fatal("a list must allow what any of its scopes matches, and nothing else")
	}
	// An attacker-chosen id far longer than any model id is refused
	// without matching (and without taking time).
	long := "flm://ollama/llama3" + strings.Repeat("a", 1<<20)
	start := time.Now()
	if r.AllowsModel(long) {
		t.Fatal("a 1 MiB id matched")
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("refusing a long id took %s", d)
	}
}

// A worst case for a backtracking matcher stays fast: the match is
// O(len(pattern)·len(id)) at most.
func TestAllowsModelWorstCase(t *testing.T) {
	// One star then a long literal: every backtrack step re-compares
	// the literal.
	scope := "flm://x/*" + strings.Repeat("a", 300) + "b"
	scopes := make([]string, apikey.MaxModels)
	for i := range scopes {
		scopes[i] = scope
	}
	if _, err := apikey.ValidateModels(scopes[:1]); err != nil {
		t.Fatal(err)
	}
	r := apikey.Record{Models: scopes}
	id := "flm://x/" + strings.Repeat("a", apikey.MaxScopeLen-len("flm://x/"))
	if r.AllowsModel(id) {
		t.Fatal("matched without the final b")
	}
	// The work is bounded by counting, not by timing: at most one step
	// per (pattern position, id position) pair.
	ok, steps := apikey.MatchSteps(scope, id)
	if ok {
		t.Fatal("matched without the final b")
	}
	if limit := (len(scope) + 1) * (len(id) + 1); steps > limit {
		t.Fatalf("%d steps for one pathological scope; the bound is %d", steps, limit)
	}
	// A scope with many stars costs no more than one with one.
	many := "flm://" + strings.Repeat("*a", 150) + "b"
	if _, steps := apikey.MatchSteps(many, id); steps > (len(many)+1)*(len(id)+1) {
		t.Fatalf("%d steps for a many-star scope", steps)
	}
}

func TestExpired(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r := apikey.Record{ExpiresAt: &at}
	if r.Expired(at.Add(-time.Nanosecond)) {
		t.Fatal("expired before ExpiresAt")
	}
	if !r.Expired(at) {
		t.Fatal("not expired at ExpiresAt exactly")
	}
	if !r.Expired(at.Add(time.Hour)) {
		t.Fatal("not expired after ExpiresAt")
	}
	if (apikey.Record{}).Expired(at.Add(100 * 365 * 24 * time.Hour)) {
		t.Fatal("a key without expiry expired")
	}

	week := apikey.SoonWindow
	for _, tc := range []struct {
		now  time.Time
		want bool
	}{
		{at.Add(-week - time.Millisecond), false},
		{at.Add(-week), true},
		{at.Add(-time.Millisecond), true},
		{at, false}, // expired, not "soon"
	} {
		if got := r.ExpiresSoon(tc.now); got != tc.want {
			t.Errorf("ExpiresSoon(%s before expiry) = %v", at.Sub(tc.now), got)
		}
	}
	revoked := r
	revoked.RevokedAt = &at
	if revoked.ExpiresSoon(at.Add(-time.Hour)) || (apikey.Record{}).ExpiresSoon(at) {
		t.Fatal("a revoked key, or one without expiry, expires soon")
	}
}

func TestValidateModels(t *testing.T) {
	good := []string{
		"flm://ollama/llama3:latest",
		"flm://ollama/llama3*",
		"flm://ollama/*",
		"flm://*",
		"flm://*/tiny-chat",
		"flm://oll*",
		"flm://vllm-b/meta-llama/Llama-3.1-8B-Instruct",
		"flm://lmstudio/モデル name",
		"flm://llamacpp/C:\\models\\tiny.gguf",
		"flm://x/" + strings.Repeat("m", 512),
		"flm://x/*" + strings.Repeat("m", apikey.MaxScopeLen-len("flm://x/*")),
	}
	got, err := apikey.ValidateModels(good)
	if err != nil {
		t.Fatalf("ValidateModels(good) = %v", err)
	}
	if strings.Join(got, "\n") != strings.Join(good, "\n") {
		t.Fatalf("ValidateModels changed good scopes: %q", got)
	}
	if got, err := apikey.ValidateModels([]string{"flm://a/b", "flm://c/*", "flm://a/b"}); err != nil || strings.Join(got, ",") != "flm://a/b,flm://c/*" {
		t.Fatalf("duplicates: %q, %v", got, err)
	}
	if got, err := apikey.ValidateModels([]string{}); err != nil || got != nil {
		t.Fatalf("empty list = %#v, %v; want nil (every model)", got, err)
	}

	bad := map[string][]string{
		"bare name":           {"llama3"},
		"bare glob":           {"llama3*"},
		"other scheme":        {"http://ollama/llama3"},
		"scheme case":         {"FLM://ollama/llama3"},
		"empty":               {""},
		"scheme only":         {"flm://"},
		"engine only":         {"flm://ollama"},
		"engine slash":        {"flm://ollama/"},
		"no engine":           {"flm:///llama3"},
		"bad engine chars":    {"flm://oll ama/llama3"},
		"bad engine in glob":  {"flm://oll.ama/*"},
		"control char":        {"flm://ollama/llama\n3"},
		"invalid utf-8":       {"flm://ollama/\xff"},
		"too long":            {"flm://x/*" + strings.Repeat("m", apikey.MaxScopeLen)},
		"model name too long": {"flm://x/" + strings.Repeat("m", 513)},
		"engine id too long":  {"flm://" + strings.Repeat("e", 101) + "/m"},
		"one bad among good":  {"flm://ollama/*", "nope"},
		"leading space":       {" flm://ollama/llama3"},
		"too many":            make([]string, apikey.MaxModels+1),
		"comma-joined (typo)": {"flm://ollama/a,flm://llamacpp/b"},
	}
	for i := range bad["too many"] {
		bad["too many"][i] = "flm://e/m" + strings.Repeat("x", i)
	}
	for name, scopes := range bad {
		if name == "comma-joined (typo)" {
			// A comma is a legal character in a model name; the CLI
			// splits on it, the core does not second-guess.
			if _, err := apikey.ValidateModels(scopes); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		_, err := apikey.ValidateModels(scopes)
		if !flmerr.Is(err, flmerr.InvalidArgument) {
			t.Errorf("%s: ValidateModels(%.40q) = %v, want INVALID_ARGUMENT", name, scopes, err)
			continue
		}
		if len(err.Error()) > 400 {
			t.Errorf("%s: message is %d bytes: it echoes the input", name, len(err.Error()))
		}
	}
	_, err = apikey.ValidateModels([]string{"llama3*"})
	if !strings.Contains(err.Error(), "flm://ollama/llama3*") {
		t.Errorf("a bare name's error should show the engine-qualified form: %v", err)
	}
	_, err = apikey.ValidateModels([]string{"flm://ollama"})
	if !strings.Contains(err.Error(), "flm://ollama/*") {
		t.Errorf("an engine-only scope's error should suggest flm://ollama/*: %v", err)
	}
}

func TestValidateRPMAndLifetime(t *testing.T) {
	for _, n := range []int{0, 1, 30, policy.MaxRate} {
		if err := apikey.ValidateRPM(n); err != nil {
			t.Errorf("ValidateRPM(%d) = %v", n, err)
		}
	}
	for _, n := range []int{-1, policy.MaxRate + 1, 1 << 40} {
		if err := apikey.ValidateRPM(n); !flmerr.Is(err, flmerr.InvalidArgument) {
			t.Errorf("ValidateRPM(%d) = %v, want INVALID_ARGUMENT", n, err)
		}
	}

	day := 24 * time.Hour
	for in, want := range map[string]time.Duration{
		"90d": 90 * day, "1d": day, "12h": 12 * time.Hour, "30m": 30 * time.Minute, "1m": time.Minute,
		"1h30m": 90 * time.Minute, " 7d ": 7 * day, "3650d": apikey.MaxLifetime, "87600h": apikey.MaxLifetime,
	} {
		got, err := apikey.ParseLifetime(in)
		if err != nil || got != want {
			t.Errorf("ParseLifetime(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "d", "0", "0d", "-1d", "-5h", "59s", "1.5d", "90 d", "90days", "3651d", "87601h",
		"99999999999999999999999d", "1e3d", "ninety days", "+1d", "1w", "1y",
	} {
		if d, err := apikey.ParseLifetime(in); !flmerr.Is(err, flmerr.InvalidArgument) {
			t.Errorf("ParseLifetime(%q) = %s, %v; want INVALID_ARGUMENT", in, d, err)
		}
	}
	if err := apikey.ValidateLifetime(0); err != nil {
		t.Errorf("ValidateLifetime(0) (never) = %v", err)
	}
}

func FuzzMatchScope(f *testing.F) {
	f.Add("flm://ollama/llama3*", "flm://ollama/llama3:latest")
	f.Add("flm://*/?-*", "flm://a/é-x")
	f.Add("flm://x/*a*b", "flm://x/aab")
	f.Fuzz(func(t *testing.T, scope, id string) {
		r := apikey.Record{Models: []string{scope}}
		got := r.AllowsModel(id)
		// Without wildcards a scope is an exact id.
		if !strings.ContainsAny(scope, "*?") && len(id) <= apikey.MaxScopeLen && got != (scope == id) {
			t.Fatalf("literal scope %q vs %q: %v", scope, id, got)
		}
		// Every id matches itself read as a scope (wildcards match
		// themselves) and the all-model glob.
		self := apikey.Record{Models: []string{id}}
		if len(id) <= apikey.MaxScopeLen && !self.AllowsModel(id) {
			t.Fatalf("%q does not match itself", id)
		}
		all := apikey.Record{Models: []string{"flm://*"}}
		if len(id) <= apikey.MaxScopeLen && all.AllowsModel(id) != strings.HasPrefix(id, "flm://") {
			t.Fatalf("flm://* vs %q", id)
		}
	})
}
