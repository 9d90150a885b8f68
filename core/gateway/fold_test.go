package gateway

import (
	"encoding/json"
	"errors"
	"testing"
)

const msgs = `"messages":[{"role":"user","content":"hi"}]`

// caseAttacks are bodies in which a key that FLM does not read (it is not
// byte-for-byte one of its fields) is read by an engine that decodes with
// Go's encoding/json (Ollama), which matches keys case-insensitively. Each
// one would route, stream, count or report usage differently on the engine
// than FLM decided. param is the key the refusal must name.
var caseAttacks = []struct {
	name, body, param string
}{
	{"upper-case model after model", `{"model":"llama3","MODEL":"other",` + msgs + `}`, "MODEL"},
	{"title-case model first", `{"Model":"other","model":"llama3",` + msgs + `}`, "Model"},
	{"escaped capital in model", `{"model":"llama3","mod\u0045l":"other",` + msgs + `}`, "modEl"},
	{"long s for s", `{"model":"llama3","stream":false,"ſtream":true,` + msgs + `}`, "ſtream"},
	{"escaped long s", `{"model":"llama3","\u017ftream":true,` + msgs + `}`, "ſtream"},
	{"upper-case stream", `{"model":"llama3","STREAM":true,` + msgs + `}`, "STREAM"},
	{"upper-case n", `{"model":"llama3","N":4,` + msgs + `}`, "N"},
	{"mixed-case stream_options", `{"model":"llama3","stream":true,"Stream_Options":{"include_usage":true},` + msgs + `}`, "Stream_Options"},
	{"case variant of messages", `{"model":"llama3",` + msgs + `,"MESSAGES":[{"role":"system","content":"x"}]}`, "MESSAGES"},
	{"case variant of prompt", `{"model":"llama3","prompt":"a","Prompt":"b"}`, "Prompt"},
	{"case variant of input", `{"model":"llama3","input":"a","INPUT":"b"}`, "INPUT"},
	{"model alone in capitals", `{"MODEL":"other",` + msgs + `}`, "MODEL"},
	{"include_usage in capitals", `{"model":"llama3","stream":true,"stream_options":{"include_usage":false,"INCLUDE_USAGE":true},` + msgs + `}`, "stream_options.INCLUDE_USAGE"},
	{"include_usage with a long s", `{"model":"llama3","stream":true,"stream_options":{"include_uſage":true},` + msgs + `}`, "stream_options.include_uſage"},
	{"include_usage twice", `{"model":"llama3","stream":true,"stream_options":{"include_usage":false,"include_usage":true},` + msgs + `}`, "stream_options.include_usage"},
	{"role in capitals", `{"model":"llama3","messages":[{"role":"user","ROLE":"system","content":"x"}]}`, "messages[0].ROLE"},
	{"role twice", `{"model":"llama3","messages":[{"role":"user","content":"x"},{"role":"user","role":"system"}]}`, "messages[1].role"},
}

// The attack, from the client's side: every body above is refused with a
// 400-class invalid_request naming the key, before anything is routed.
func TestCaseVariantKeysRefused(t *testing.T) {
	for _, a := range caseAttacks {
		t.Run(a.name, func(t *testing.T) {
			route := Chat
			switch a.param {
			case "Prompt":
				route = Completions
			case "INPUT":
				route = Embeddings
			}
			r, err := ParseRequest(route, []byte(a.body))
			var ge *Error
			if !errors.As(err, &ge) {
				t.Fatalf("accepted (model %q, stream %v): FLM and the engine would disagree", r.Model, r.Stream)
			}
			if ge.Kind != InvalidRequest || ge.Code != "invalid_request" || ge.Param != a.param {
				t.Fatalf("error %+v, want invalid_request with param %q", ge, a.param)
			}
		})
	}
	// The attack is real: encoding/json reads the variant.
	var v struct {
		Model string `json:"model"`
	}
	if err := json.Unmarshal([]byte(caseAttacks[0].body), &v); err != nil || v.Model != "other" {
		t.Fatalf("encoding/json read model %q (%v); the premise of this test changed", v.Model, err)
	}
}

// Keys FLM does not read keep any spelling, and routed keys spelled
// exactly keep working: the fold check refuses only what an engine could
// read as one of FLM's fields.
func TestCaseVariantCheckLeavesOtherKeysAlone(t *testing.T) {
	for _, body := range []string{
		`{"model":"m","Temperature":0.2,"MAX_TOKENS":5,"Models":1,"streams":true,"nn":2,"x_Model":"y",` + msgs + `}`,
		`{"model":"m","stream":true,"stream_options":{"include_usage":true,"Continuous_Usage_Stats":true},"messages":[{"role":"user","Content":"x","NAME":"n"}]}`,
		`{"model":"m","mod\u0065l_extra":1,` + msgs + `}`,
	} {
		if _, err := ParseRequest(Chat, []byte(body)); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
}

// engineView is how an engine using Go's encoding/json (Ollama) reads the
// fields FLM routes on.
type engineView struct {
	Model         string `json:"model"`
	Stream        *bool  `json:"stream"`
	N             *int   `json:"n"`
	StreamOptions *struct {
		IncludeUsage *bool `json:"include_usage"`
	} `json:"stream_options"`
	Messages json.RawMessage `json:"messages"`
}

// Whenever the scanner accepts a body, encoding/json decodes it without
// error and sees exactly the model, stream, n, include_usage and message
// roles FLM saw: no spelling, escape or duplicate makes the engine act on
// something FLM did not check.
func FuzzScannerMatchesEncodingJSON(f *testing.F) {
	for _, a := range caseAttacks {
		f.Add(a.body)
	}
	for _, s := range []string{
		`{"model":"m",` + msgs + `}`,
		`{"model":"m","stream":true,"n":3,"stream_options":{"include_usage":true},` + msgs + `}`,
		`{"model":"m","stream":null,"n":null,"stream_options":null,` + msgs + `}`,
		`{"model":"m","prompt":["a"],"stream":false,"stream_options":{"include_usage":null}}`,
		`{"model":"m","input":"x","messages":"not read here"}`,
		`{"mod\u0065l":"fl\u006d://a/b","\u006e":2,"messages":[{"r\u006fle":"u"}]}`,
		`{"model":"m","n":1.0,` + msgs + `}`,
		`{"model":"m","stream_options":{"include_usage":"yes"},` + msgs + `}`,
		`{"model":"m","stream_options":[],` + msgs + `}`,
		`{"model":"m","messages":[{"role":"user"},{"Role":"x","role":"y"}]}`,
		`{"model":"m","Kelvin":"K","\u212a":1,` + msgs + `}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, route := range []Route{Chat, Completions, Embeddings} {
			r, err := ParseRequest(route, []byte(body))
			if err != nil {
				continue
			}
			var v engineView
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				t.Fatalf("%s: FLM accepted what encoding/json refuses: %v", route.Path(), err)
			}
			stream := v.Stream != nil && *v.Stream
			n := 0
			if v.N != nil {
				n = *v.N
			}
			usage := v.StreamOptions != nil && v.StreamOptions.IncludeUsage != nil && *v.StreamOptions.IncludeUsage
			if v.Model != r.Model || stream != r.Stream || n != r.n || usage != r.includeUsage {
				t.Fatalf("%s: FLM saw model %q stream %v n %d include_usage %v; encoding/json sees %q %v %d %v",
					route.Path(), r.Model, r.Stream, r.n, r.includeUsage, v.Model, stream, n, usage)
			}
			if route != Chat {
				continue
			}
			var roles []struct {
				Role string `json:"role"`
			}
			if err := json.Unmarshal(v.Messages, &roles); err != nil || len(roles) == 0 {
				t.Fatalf("FLM accepted messages that encoding/json reads as %v (%v)", roles, err)
			}
			for i, m := range roles {
				if m.Role == "" {
					t.Fatalf("FLM accepted message %d, whose role encoding/json reads as empty", i)
				}
			}
		}
	})
}
