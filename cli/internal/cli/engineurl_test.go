package cli

import (
	"strings"
	"testing"
)

// `engines add` of an engine FLM already checks at that URL would serve
// every model twice and make bare names ambiguous: refused, naming the
// existing id, and nothing is stored.
func TestEnginesAddRefusesKnownURL(t *testing.T) {
	dir := t.TempDir()
	// The tests' default endpoints all sit at 127.0.0.1:9 (hermeticEnv).
	for _, u := range []string{"http://127.0.0.1:9", "http://localhost:9/", "HTTP://LocalHost:9", "http://[::1]:9", "http://127.0.0.1:9//"} {
		msg := fails(t, dir, 1, "INVALID_ARGUMENT", "engines", "add", "--kind", "llamacpp", "--url", u, "--id", "mine")
		if !strings.Contains(msg, `default llama.cpp engine "llamacpp"`) || !strings.Contains(msg, "flm://llamacpp/") {
			t.Fatalf("%s: %s", u, msg)
		}
	}
	ok(t, dir, "engines", "add", "--kind", "vllm", "--url", "http://example.com/v1", "--id", "v1")
	ok(t, dir, "engines", "add", "--kind", "ollama", "--url", "http://127.0.0.1:8001", "--id", "o1")
	for _, c := range []struct{ kind, url, existing string }{
		{"vllm", "http://EXAMPLE.com:80/v1/", "v1"},
		{"vllm", "http://example.com./v1", "v1"},
		{"ollama", "http://localhost:8001", "o1"},
		{"lmstudio", "http://[::1]:8001/", "o1"}, // another kind at the same address too
	} {
		msg := fails(t, dir, 1, "INVALID_ARGUMENT", "engines", "add", "--kind", c.kind, "--url", c.url)
		if !strings.Contains(msg, `engine "`+c.existing+`" already points at`) || !strings.Contains(msg, "flm engines remove "+c.existing) {
			t.Fatalf("%s: %s", c.url, msg)
		}
	}
	// Other addresses are other engines.
	ok(t, dir, "engines", "add", "--kind", "vllm", "--url", "https://example.com/v1", "--id", "v2")
	ok(t, dir, "engines", "add", "--kind", "vllm", "--url", "http://example.com:8000/v1", "--id", "v3")
	ok(t, dir, "engines", "add", "--kind", "ollama", "--url", "http://127.0.0.1:8002", "--id", "o2")
	var list struct {
		Engines []struct {
			ID        string `json:"id"`
			UserAdded bool   `json:"user_added"`
		} `json:"engines"`
	}
	ok(t, dir, "engines", "list").data(t, &list)
	var added []string
	for _, e := range list.Engines {
		if e.UserAdded {
			added = append(added, e.ID)
		}
	}
	if strings.Join(added, ",") != "v1,o1,v2,v3,o2" {
		t.Fatalf("stored endpoints: %v", added)
	}
}

func TestEngineURLKey(t *testing.T) {
	same := [][2]string{
		{"http://127.0.0.1:8080", "http://localhost:8080/"},
		{"http://[::1]:8080", "http://127.0.0.1:8080"},
		{"http://[::ffff:127.0.0.1]:8080", "http://127.0.0.1:8080"},
		{"HTTP://Host.Example", "http://host.example:80"},
		{"https://h", "https://h:443/"},
		{"http://10.0.0.1:1/a/", "http://10.0.0.1:1/a"},
	}
	for _, p := range same {
		if engineURLKey(p[0]) != engineURLKey(p[1]) {
			t.Errorf("%s and %s differ: %s vs %s", p[0], p[1], engineURLKey(p[0]), engineURLKey(p[1]))
		}
	}
	differ := [][2]string{
		{"http://127.0.0.1:8080", "https://127.0.0.1:8080"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8081"},
		{"http://h/a", "http://h/b"},
		{"http://h:80", "http://h:8080"},
		{"http://10.0.0.1", "http://127.0.0.1"},
	}
	for _, p := range differ {
		if engineURLKey(p[0]) == engineURLKey(p[1]) {
			t.Errorf("%s and %s compare equal", p[0], p[1])
		}
	}
}
