package enginefake

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// replaySetup is how a fixture's engine was configured and what state it was
// in when the capture was taken.
type replaySetup struct {
	opts Options
	// before are requests (method, path, body) that put the fake in the
	// captured state (a loaded model, ...).
	before [][3]string
}

// setupFor configures a fake like the capture of fx.
func setupFor(fx *Fixture) replaySetup {
	s := replaySetup{opts: Options{Kind: fx.Kind}}
	name := fx.Name
	switch {
	case strings.HasPrefix(name, "llamacpp/loading_"):
		s.opts.Failure = FailLoading
	case strings.HasPrefix(name, "llamacpp/embeddings_mode/"), strings.HasPrefix(name, "llamacpp/api_families/"):
		// --alias tiny-chat --embeddings --metrics
		s.opts.Models = []Model{{Name: "tiny-chat", Embedding: true}}
	case strings.HasPrefix(name, "llamacpp/router_mode/"):
		s.opts.Router = true
		load := func(m string) [3]string { return [3]string{"POST", "/models/load", `{"model":"` + m + `"}`} }
		switch strings.TrimPrefix(name, "llamacpp/router_mode/") {
		case "models_after_load.http", "v1_models_after_load.http", "models_while_autoloading_loaded.http",
			"v1_chat_completions_loaded.http", "v1_chat_completions_stream_loaded.http":
			s.before = append(s.before, load("tiny-chat"))
		case "models_after_load_embed.http":
			s.before = append(s.before, load("tiny-embed"))
		}
	case strings.HasPrefix(name, "ollama/no_models/"):
		s.opts.Models = []Model{}
	case name == "ollama/api_ps.http":
		s.before = append(s.before, [3]string{"POST", "/api/chat", `{"model":"tiny","messages":[],"stream":false}`})
	case name == "ollama/api_ps_two_loaded.http":
		s.before = append(s.before,
			[3]string{"POST", "/api/generate", `{"model":"tiny"}`},
			[3]string{"POST", "/api/embed", `{"model":"tiny-embed","input":"x"}`})
	case name == "ollama/api_ps_after_unload.http":
		s.before = append(s.before, [3]string{"POST", "/api/embed", `{"model":"tiny-embed","input":"x"}`})
	case name == "vllm/error_unauthorized.http":
		s.opts.APIKey = "secret" // the captured request has no Authorization
	case name == "vllm/health_engine_dead.http":
		s.opts.Failure = FailLoading
	case name == "vllm/error_unknown_model_legacy_pre_0.10.http":
		s.opts.Version = "0.9.2"
	case name == "vllm/v1_models_served_name_and_lora.http":
		// --served-model-name qwen-small --enable-lora --lora-modules sql-lora=/loras/sql-lora
		s.opts.Models = []Model{{Name: "qwen-small", Root: "Qwen/Qwen2.5-1.5B-Instruct"},
			{Name: "sql-lora", Root: "/loras/sql-lora", Parent: "qwen-small"}}
	case name == "lmstudio/error_no_models_loaded.http":
		s.opts.Models = []Model{}
	case name == "lmstudio/error_unknown_model.http":
		// The capture had several models loaded (else the name is ignored).
		s.opts.Models = []Model{{Name: "gemma-3-27b-it-qat"}, {Name: "qwen2.5-coder-3b-instruct"},
			{Name: "qwen3-32b"}, {Name: "text-embedding-nomic-embed-text-v1.5", Embedding: true}}
	case name == "lmstudio/v1_models.http":
		s.opts.Models = []Model{{Name: "qwen2.5-7b-instruct"}, {Name: "text-embedding-nomic-embed-text-v1.5", Embedding: true}}
	}
	return s
}

// TestReplayEveryFixture sends every fixture's own request to a fake
// configured like the capture and compares the answer with the capture.
func TestReplayEveryFixture(t *testing.T) {
	fixtures, err := Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	if len(fixtures) != 165 {
		t.Errorf("%d fixtures embedded, want 165", len(fixtures))
	}
	for _, fx := range fixtures {
		t.Run(fx.Name, func(t *testing.T) {
			t.Parallel()
			setup := setupFor(fx)
			srv := startFake(t, setup.opts)
			client := testClient()
			for _, b := range setup.before {
				r := do(t, client, b[0], srv.URL()+b[1], http.Header{"Content-Type": {"application/json"}}, []byte(b[2]))
				if r.Status != http.StatusOK {
					t.Fatalf("setup %s %s: %d %s", b[0], b[1], r.Status, r.Body)
				}
			}
			hdr := http.Header{}
			for _, h := range fx.Request.Header {
				switch strings.ToLower(h.Name) {
				case "host", "content-length":
				default:
					hdr.Add(h.Name, h.Value)
				}
			}
			var body []byte
			if fx.Request.Method != http.MethodGet && fx.Request.Method != http.MethodHead {
				body = fx.Request.Body
			}
			got := do(t, client, fx.Request.Method, srv.URL()+fx.Request.Target, hdr, body)
			compareWithCapture(t, fx, got)
		})
	}
}

func compareWithCapture(t *testing.T, fx *Fixture, got result) {
	t.Helper()
	want := fx.Response
	if got.Status != want.Status {
		t.Fatalf("status %d, captured %d; body %.300s", got.Status, want.Status, got.Body)
	}
	wantCT, _ := want.Header.Get("Content-Type")
	if gotCT := got.Header.Get("Content-Type"); !strings.EqualFold(gotCT, wantCT) {
		t.Errorf("Content-Type %q, captured %q", gotCT, wantCT)
	}
	if server, ok := want.Header.Get("Server"); ok && got.Header.Get("Server") != server {
		t.Errorf("Server %q, captured %q", got.Header.Get("Server"), server)
	}
	if v, ok := want.Header.Get("Access-Control-Allow-Origin"); ok {
		if g, present := got.Header["Access-Control-Allow-Origin"]; !present || g[0] != v {
			t.Errorf("Access-Control-Allow-Origin %q, captured %q", g, v)
		}
	}
	conn, _ := want.Header.Get("Connection")
	if wantClose := strings.EqualFold(conn, "close"); got.Close != wantClose {
		t.Errorf("Connection: close = %v, captured %v", got.Close, wantClose)
	}
	if len(want.Body) == 0 {
		if len(got.Body) != 0 {
			t.Errorf("body %.100q, captured none", got.Body)
		}
		return
	}
	ct := strings.ToLower(wantCT)
	switch {
	case strings.HasPrefix(ct, "text/event-stream"):
		wantEv, err := SSEStream(want.Body)
		if err != nil {
			t.Fatal(err)
		}
		gotEv, err := SSEStream(got.Body)
		if err != nil {
			t.Fatalf("bad SSE: %v\n%s", err, got.Body)
		}
		if len(gotEv) != len(wantEv) {
			t.Fatalf("%d SSE events, captured %d:\n%s", len(gotEv), len(wantEv), got.Body)
		}
		for i := range wantEv {
			if gotEv[i].Name != wantEv[i].Name {
				t.Errorf("event %d: named %q, captured %q", i, gotEv[i].Name, wantEv[i].Name)
			}
			w, g := wantEv[i].Data, gotEv[i].Data
			if string(w) == "[DONE]" || string(g) == "[DONE]" {
				if !bytes.Equal(w, g) {
					t.Errorf("event %d: %.80q, captured %q", i, g, w)
				}
				continue
			}
			if err := sameShape(w, g); err != nil {
				t.Errorf("event %d: %v", i, err)
			}
		}
	case strings.HasPrefix(ct, "application/x-ndjson"):
		wantL, gotL := NDJSONLines(want.Body), NDJSONLines(got.Body)
		if len(gotL) != len(wantL) {
			t.Fatalf("%d NDJSON lines, captured %d", len(gotL), len(wantL))
		}
		for i := range wantL {
			if err := sameShape(wantL[i], gotL[i]); err != nil {
				t.Errorf("line %d: %v", i, err)
			}
		}
		last, _ := shapeOf(gotL[len(gotL)-1])
		if m, _ := last.(map[string]any); m["done"] != true {
			t.Errorf("last NDJSON line is not done:true: %s", gotL[len(gotL)-1])
		}
	case strings.Contains(ct, "json"):
		if err := sameShape(want.Body, got.Body); err != nil {
			t.Errorf("%v\nfake:     %.400s\ncaptured: %.400s", err, got.Body, want.Body)
		}
		if w, g := bytes.HasSuffix(want.Body, []byte("\n")), bytes.HasSuffix(got.Body, []byte("\n")); w != g {
			t.Errorf("body ends with a newline: %v, captured %v", g, w)
		}
	default:
		if !bytes.Equal(got.Body, want.Body) {
			t.Errorf("body %.200q, captured %.200q", got.Body, want.Body)
		}
	}
}
