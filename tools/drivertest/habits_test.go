package drivertest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/tools/enginefake"
)

// documentedHabits are the habits no capture can show (vLLM and LM Studio
// cannot run here; "n" > 1 was never captured), with where each is
// documented. Every other declared habit must be seen in the captures.
var documentedHabits = map[engine.Kind]map[string]string{
	engine.VLLM: {
		"MultipleChoices": "SamplingParams.n: vLLM returns n choices (docs: OpenAI-compatible server, chat/completions parameters)",
	},
	engine.LMStudio: {
		"HonoursIncludeUsage": "LM Studio API changelog 0.3.18: stream_options.include_usage returns usage during streaming",
	},
}

// notDeclared are native API families an engine serves (captured or
// documented) that its driver deliberately does not declare, so that FLM
// translates them instead of passing them through, with why. A native
// route is declared only where a capture shows the official SDKs accept
// its answers.
var notDeclared = map[engine.Kind]map[string]string{
	engine.LlamaCPP: {
		"NativeResponses": "api_families/v1_responses_stream.http lacks sequence_number, output_index and content_index: openai-node's responses.stream() throws on it",
	},
	engine.VLLM: {
		"NativeMessages":  "POST /v1/messages only since vllm-project/vllm#27882 (late 2025), never captured",
		"NativeResponses": "POST /v1/responses only since v0.10 (vllm-project/vllm#20504), never captured",
	},
	engine.LMStudio: {
		"NativeMessages":  "POST /v1/messages only since 0.4.1, never captured; older versions answer unknown routes with 200",
		"NativeResponses": "POST /v1/responses only since 0.3.29, never captured; older versions answer unknown routes with 200",
	},
}

// habitNames lists the habits by field name, in declaration order.
func habitNames(h engine.Habits) map[string]bool {
	return map[string]bool{
		"ClosesAfterStream":   h.ClosesAfterStream,
		"HonoursIncludeUsage": h.HonoursIncludeUsage,
		"MultipleChoices":     h.MultipleChoices,
		"LatestTagAlias":      h.LatestTagAlias,
		"NativeMessages":      h.NativeMessages,
		"NativeResponses":     h.NativeResponses,
	}
}

// Every driver declares exactly the habits its engine's captures show,
// plus the documented ones no capture can show.
func TestDeclaredHabitsMatchCaptures(t *testing.T) {
	drvs := drivers()
	for _, k := range engine.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			drv, ok := drvs[k]
			if !ok {
				t.Fatalf("no driver for %s", k)
			}
			seen := observedHabits(t, k)
			for name, declared := range habitNames(drv.Habits()) {
				why, documented := documentedHabits[k][name]
				evidence, observed := seen[name]
				_, deliberate := notDeclared[k][name]
				switch {
				case declared && deliberate:
					t.Errorf("%s declares %s, listed as deliberately not declared", k, name)
				case !declared && deliberate: // translated on purpose
				case declared && !observed && !documented:
					t.Errorf("%s declares %s, but no capture shows it and none is documented", k, name)
				case !declared && observed:
					t.Errorf("%s does not declare %s, but %s shows it", k, name, evidence)
				case !declared && documented:
					t.Errorf("%s does not declare %s, documented: %s", k, name, why)
				}
			}
		})
	}
}

// observedHabits derives a kind's habits from its captures (and, for
// ClosesAfterStream, from the fake that replays them): habit name → the
// evidence.
func observedHabits(t *testing.T, k engine.Kind) map[string]string {
	t.Helper()
	all, err := enginefake.Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	var fxs []*enginefake.Fixture
	listed := map[string]bool{} // model names the engine lists
	for _, fx := range all {
		if string(fx.Kind) != string(k) {
			continue
		}
		fxs = append(fxs, fx)
		if fx.Request.Method == http.MethodGet && fx.Response.Status == http.StatusOK {
			for _, n := range listedNames(fx.Response.Body) {
				listed[n] = true
			}
		}
	}
	if len(fxs) == 0 {
		t.Fatalf("no captures of %s", k)
	}
	seen := map[string]string{}
	for _, fx := range fxs {
		if fx.Request.Method != http.MethodPost || fx.Response.Status != http.StatusOK {
			continue
		}
		var req struct {
			Model         string `json:"model"`
			Stream        bool   `json:"stream"`
			N             int    `json:"n"`
			StreamOptions struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
		}
		_ = json.Unmarshal(fx.Request.Body, &req)
		switch p := fx.Request.Path(); {
		case p == "/v1/messages":
			seen["NativeMessages"] = fx.Name
		case p == "/v1/responses":
			seen["NativeResponses"] = fx.Name
		case p == "/v1/chat/completions" || p == "/v1/completions":
			if req.Stream && req.StreamOptions.IncludeUsage && endsWithUsageChunk(fx.Response.Body) {
				seen["HonoursIncludeUsage"] = fx.Name
			}
			if req.N > 1 && choices(fx.Response.Body) > 1 {
				seen["MultipleChoices"] = fx.Name
			}
			// Asked for "x", served although only "x:latest" is listed.
			if req.Model != "" && !strings.Contains(req.Model, ":") && listed[req.Model+":latest"] && !listed[req.Model] {
				seen["LatestTagAlias"] = fx.Name
			}
		}
	}
	if closesAfterStream(t, fxs) {
		seen["ClosesAfterStream"] = "the fake's replay of its stream capture"
	}
	return seen
}

// listedNames reads a model listing: OpenAI's data[].id or Ollama's
// models[].name.
func listedNames(body []byte) []string {
	var l struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
		Models []struct {
			Name string `json:"name"`
		} `json:"models"`
	}
	if json.Unmarshal(body, &l) != nil {
		return nil
	}
	var out []string
	for _, d := range l.Data {
		out = append(out, d.ID)
	}
	for _, m := range l.Models {
		out = append(out, m.Name)
	}
	return out
}

// dataEvents returns the payloads of an SSE body's data lines, [DONE]
// excluded.
func dataEvents(body []byte) [][]byte {
	var out [][]byte
	for _, line := range bytes.Split(body, []byte("\n")) {
		p, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r"), []byte("data: "))
		if ok && string(p) != "[DONE]" {
			out = append(out, p)
		}
	}
	return out
}

// endsWithUsageChunk: the stream's last event is OpenAI's usage chunk,
// "choices":[] with a usage object.
func endsWithUsageChunk(body []byte) bool {
	evs := dataEvents(body)
	if len(evs) == 0 {
		return false
	}
	var last struct {
		Choices []json.RawMessage `json:"choices"`
		Usage   *struct {
			TotalTokens *int `json:"total_tokens"`
		} `json:"usage"`
	}
	return json.Unmarshal(evs[len(evs)-1], &last) == nil && last.Choices != nil && len(last.Choices) == 0 &&
		last.Usage != nil && last.Usage.TotalTokens != nil
}

// choices counts the distinct choice indexes of a response, streamed or
// not.
func choices(body []byte) int {
	idx := map[int]bool{}
	payloads := dataEvents(body)
	if len(payloads) == 0 {
		payloads = [][]byte{body}
	}
	for _, p := range payloads {
		var v struct {
			Choices []struct {
				Index int `json:"index"`
			} `json:"choices"`
		}
		if json.Unmarshal(p, &v) == nil {
			for _, c := range v.Choices {
				idx[c.Index] = true
			}
		}
	}
	return len(idx)
}

// closesAfterStream replays the kind's captured chat stream twice over one
// keep-alive client: an engine that closes the connection after a stream
// makes the second request dial again.
func closesAfterStream(t *testing.T, fxs []*enginefake.Fixture) bool {
	t.Helper()
	var stream *enginefake.Fixture
	for _, fx := range fxs {
		if fx.Request.Path() == "/v1/chat/completions" && fx.Response.Status == http.StatusOK &&
			strings.HasPrefix(headerValue(fx, "Content-Type"), "text/event-stream") {
			stream = fx
			break
		}
	}
	if stream == nil {
		t.Fatalf("%s: no captured chat stream", fxs[0].Kind)
	}
	f := start(t, enginefake.Options{Kind: stream.Kind})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i := range 2 {
		resp, err := client.Post(f.URL()+"/v1/chat/completions", "application/json", bytes.NewReader(stream.Request.Body))
		if err != nil {
			t.Fatalf("%s stream %d: %v", stream.Kind, i, err)
		}
		var buf bytes.Buffer
		_, err = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(buf.Bytes(), []byte("data: [DONE]")) {
			t.Fatalf("%s stream %d: HTTP %d, %v: %.200s", stream.Kind, i, resp.StatusCode, err, buf.Bytes())
		}
		// Let the client notice a connection the engine closed.
		time.Sleep(50 * time.Millisecond)
	}
	return f.Connections() > 1
}

func headerValue(fx *enginefake.Fixture, name string) string {
	v, _ := fx.Response.Header.Get(name)
	return v
}
