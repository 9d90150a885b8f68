package proxy

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/tools/enginefake"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/golden/name, or writes it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update once)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs:\n got %s\nwant %s", name, got, want)
	}
}

func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	return append(out, '\n')
}

var requestIDs = regexp.MustCompile(`req_[0-9a-f]{24}`)

// The translation rules of docs/specs/PROXY_SPEC.md, per engine kind: what
// the engine receives for a client request, and what the client receives
// for an engine's error.
func TestGoldenTranslation(t *testing.T) {
	client := []struct{ name, body string }{
		{"chat_stream", `{"model":"%s","messages":[{"role":"user","content":"hi"}],"stream":true,"temperature":0.2,"x_vendor":{"a":1}}`},
		{"chat_stream_options_without_stream", `{"model":"%s","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}`},
		{"completions_stream", `{"model":"%s","prompt":"once","stream":true,"stream_options":{"include_usage":false}}`},
		{"embeddings", `{"model":"%s","input":"x","encoding_format":"float"}`},
		{"chat_n2", `{"model":"%s","messages":[{"role":"user","content":"hi"}],"n":2}`},
	}
	for _, k := range engine.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			src, key := newMemSource(t)
			f := startFake(t, enginefake.Options{Kind: enginefake.Kind(k), Models: []enginefake.Model{{Name: "org/model:Q4"}}})
			// "ghost" is in FLM's catalog but not on the engine: the engine's own
			// not-found answer (captured shape) reaches the client normalised.
			src.addEngine("e", k, f.URL(), "org/model:Q4", "ghost")
			p := startProxy(t, src, key)
			for _, c := range client {
				before := len(f.Requests())
				route := "/v1/chat/completions"
				switch c.name {
				case "completions_stream":
					route = "/v1/completions"
				case "embeddings":
					route = "/v1/embeddings"
				}
				r := p.do(t, "POST", route, sprintfJSON(c.body, "flm://e/org/model:Q4"), p.auth()...)
				reqs := f.Requests()
				if len(reqs) == before {
					// Refused by FLM: the client's answer is the golden.
					golden(t, string(k)+"_"+c.name+".client.json", requestIDs.ReplaceAll(indent(t, r.body), []byte("req_ID")))
					continue
				}
				up := reqs[len(reqs)-1]
				golden(t, string(k)+"_"+c.name+".upstream.json", indent(t, up.Body))
				if k == engine.LlamaCPP && c.name == "chat_stream" && up.Header.Get("Connection") != "close" {
					t.Fatalf("llama.cpp stream request without Connection: close (%v)", up.Header)
				}
			}
			// Engine errors become FLM's envelope.
			r0 := p.do(t, "POST", "/v1/chat/completions", sprintfJSON(client[1].body, "flm://e/ghost"), p.auth()...)
			body := r0.body
			if r0.status == 200 {
				body = []byte(`{"note":"this engine answers for any model name (200)"}`)
			}
			golden(t, string(k)+"_engine_unknown_model.client.json", requestIDs.ReplaceAll(indent(t, body), []byte("req_ID")))
			f.SetFailure(enginefake.Fail500)
			r := p.do(t, "POST", "/v1/chat/completions", sprintfJSON(client[1].body, "flm://e/org/model:Q4"), p.auth()...)
			golden(t, string(k)+"_engine_500.client.json", requestIDs.ReplaceAll(indent(t, r.body), []byte("req_ID")))
		})
	}
}

func sprintfJSON(format, model string) string {
	b, _ := json.Marshal(model)
	return string(bytes.Replace([]byte(format), []byte(`"%s"`), b, 1))
}
