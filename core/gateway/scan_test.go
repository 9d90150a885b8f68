package gateway

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/unjuno/flm/core/engine"
)

func TestDuplicateAndEscapedKeys(t *testing.T) {
	for _, body := range []string{
		`{"model":"a","model":"b","messages":[{"role":"user"}]}`,
		`{"model":"a","mod\u0065l":"b","messages":[{"role":"user"}]}`,
		`{"model":"a","messages":[{"role":"user"}],"stream":true,"stream":false}`,
	} {
		_, err := ParseRequest(Chat, []byte(body))
		var ge *Error
		if !errors.As(err, &ge) || ge.Kind != InvalidRequest {
			t.Errorf("%s accepted: %v", body, err)
		}
	}
	r, err := ParseRequest(Chat, []byte(`{"mod\u0065l":"fl\u006d://x/y","messages":[{"r\u006fle":"user"}]}`))
	if err != nil || r.Model != "flm://x/y" {
		t.Fatalf("escaped keys: %+v %v", r, err)
	}
}

// The rewrite changes nothing but the model (and drops stream_options of a
// request that does not stream): encoding/json reads the same body
// otherwise.
func FuzzRewriteMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"x"}]}`,
		`{ "model" : "m" , "messages" : [ { "role" : "user" , "content" : "a\"}]" } ] , "stream" : true , "x" : {"a":[1,{"b":"}"}]} }`,
		`{"model":"m","messages":[{"role":"u"}],"stream":true,"stream_options":{"include_usage":false,"z":1}}`,
		`{"model":"m","messages":[{"role":"u"}],"stream_options":{"include_usage":true}}`,
		`{"model":"\u00e9\\\"","messages":[{"role":"u"}],"stream":null,"n":1,"temperature":0.5e1,"t":true,"f":false,"nil":null}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r, err := ParseRequest(Chat, []byte(body))
		if err != nil {
			return
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("accepted what encoding/json refuses: %v", err)
		}
		if m["model"] != r.Model {
			t.Fatalf("model %q, encoding/json says %v", r.Model, m["model"])
		}
		out, err := r.Rewrite(Target{Endpoint: engine.Endpoint{Kind: "fifth"}, Model: "up/stream:1", Habits: engine.Habits{MultipleChoices: true}})
		if err != nil {
			return
		}
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("rewrite is not JSON: %s", out)
		}
		// Only the model changes, and stream_options goes when the request
		// does not stream; nothing is added (no include_usage).
		m["model"] = "up/stream:1"
		if !r.Stream {
			delete(m, "stream_options")
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("rewrite of %s\n got %v\nwant %v", body, got, m)
		}
	})
}
