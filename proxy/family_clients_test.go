package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicopt "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/tools/enginefake"
)

// streamUsage reports whether a kind's fake reports usage in streams: the
// captured LM Studio stream has none, and FLM never invents token counts
// (the Anthropic stream then says 0, the Responses stream null).
func streamUsage(k engine.Kind) bool { return k != engine.LMStudio }

// familyClientProxy runs a proxy in front of a fake engine of kind k
// serving familyModel, with a key for every model and a key scoped to
// another engine's models.
func familyClientProxy(t *testing.T, k engine.Kind) (p *testProxy, scoped apikey.Issued) {
	t.Helper()
	src, key := newMemSource(t)
	scoped, err := src.keys.CreateWith(context.Background(), apikey.CreateOptions{Label: "scoped", Models: []string{"flm://elsewhere/*"}})
	if err != nil {
		t.Fatal(err)
	}
	f := startFake(t, enginefake.Options{Kind: enginefake.Kind(k), Models: []enginefake.Model{{Name: familyModel}}})
	src.addEngine(string(k), k, f.URL(), familyModel)
	return startProxy(t, src, key), scoped
}

// The official Go Anthropic client works unchanged against FLM in front of
// every engine kind, streamed and not, and gets its own error types: 401
// authentication_error for a bad key, 403 permission_error for a model
// outside the key's scope.
func TestAnthropicGoClient(t *testing.T) {
	ctx := context.Background()
	for _, k := range engine.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			p, scoped := familyClientProxy(t, k)
			client := func(key string) anthropic.Client {
				return anthropic.NewClient(anthropicopt.WithoutEnvironmentDefaults(), anthropicopt.WithBaseURL(p.url),
					anthropicopt.WithAPIKey(key), anthropicopt.WithMaxRetries(0))
			}
			c := client(p.key.Plain)
			params := anthropic.MessageNewParams{
				Model:     "flm://" + string(k) + "/" + familyModel,
				MaxTokens: 16,
				System:    []anthropic.TextBlockParam{{Text: "be brief"}},
				Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
			}
			msg, err := c.Messages.New(ctx, params)
			if err != nil || msg.Role != "assistant" || len(msg.Content) == 0 || msg.Content[0].Text == "" || msg.StopReason == "" || msg.Usage.OutputTokens == 0 {
				t.Fatalf("messages.new: %v %+v", err, msg)
			}
			stream := c.Messages.NewStreaming(ctx, params)
			acc := anthropic.Message{}
			var types []string
			for stream.Next() {
				ev := stream.Current()
				types = append(types, ev.Type)
				if err := acc.Accumulate(ev); err != nil {
					t.Fatalf("accumulate %s: %v", ev.Type, err)
				}
			}
			if err := stream.Err(); err != nil || len(acc.Content) == 0 || acc.Content[0].Text == "" || acc.StopReason == "" || streamUsage(k) == (acc.Usage.OutputTokens == 0) {
				t.Fatalf("stream: %v %+v", err, acc)
			}
			if types[0] != "message_start" || types[len(types)-1] != "message_stop" || !slices.Contains(types, "content_block_delta") {
				t.Fatalf("stream events %q", types)
			}
			count, err := c.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: params.Model, Messages: params.Messages})
			var apiErr *anthropic.Error
			if k == engine.LlamaCPP {
				if err != nil || count.InputTokens == 0 {
					t.Fatalf("count tokens: %v %+v", err, count)
				}
			} else if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Type() != "not_found_error" {
				t.Fatalf("count tokens on %s: %v", k, err)
			}
			bad := client("flm_wrong")
			if _, err := bad.Messages.New(ctx, params); !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Type() != "authentication_error" {
				t.Fatalf("bad key: %v", err)
			}
			out := client(scoped.Plain)
			if _, err := out.Messages.New(ctx, params); !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || apiErr.Type() != "permission_error" {
				t.Fatalf("model outside the key's scope: %v", err)
			}
			s := out.Messages.NewStreaming(ctx, params)
			for s.Next() {
			}
			if err := s.Err(); !errors.As(err, &apiErr) || apiErr.StatusCode != 403 {
				t.Fatalf("stream outside the key's scope: %v", err)
			}
		})
	}
}

// The official Go OpenAI client's Responses API works against FLM in front
// of every engine kind, streamed and not.
func TestResponsesGoClient(t *testing.T) {
	ctx := context.Background()
	for _, k := range engine.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			p, scoped := familyClientProxy(t, k)
			c := openai.NewClient(option.WithBaseURL(p.url+"/v1"), option.WithAPIKey(p.key.Plain), option.WithMaxRetries(0))
			params := responses.ResponseNewParams{
				Model:           familyModel,
				Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
				Instructions:    openai.String("be brief"),
				MaxOutputTokens: openai.Int(16),
			}
			r, err := c.Responses.New(ctx, params)
			if err != nil || r.OutputText() == "" || r.Usage.OutputTokens == 0 {
				t.Fatalf("responses.new: %v %+v", err, r)
			}
			stream := c.Responses.NewStreaming(ctx, params)
			var text strings.Builder
			var final responses.Response
			var seq []int64
			for stream.Next() {
				ev := stream.Current()
				seq = append(seq, ev.SequenceNumber)
				switch ev.Type {
				case "response.output_text.delta":
					text.WriteString(ev.Delta)
				case "response.completed", "response.incomplete":
					final = ev.Response
				}
			}
			if err := stream.Err(); err != nil || text.String() == "" || final.OutputText() != text.String() {
				t.Fatalf("stream: %v %q %+v", err, text.String(), final)
			}
			for i, n := range seq {
				if n != int64(i) {
					t.Fatalf("sequence numbers %v", seq)
				}
			}
			var apiErr *openai.Error
			bad := openai.NewClient(option.WithBaseURL(p.url+"/v1"), option.WithAPIKey(scoped.Plain), option.WithMaxRetries(0))
			if _, err := bad.Responses.New(ctx, params); !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || apiErr.Code != "model_not_allowed" {
				t.Fatalf("model outside the key's scope: %v", err)
			}
		})
	}
}

// runClientScript runs a Node script of tools/clienttest with env and
// decodes its JSON report. Node and the pinned npm packages are required
// (tools/test.sh installs them): their absence fails the test.
func runClientScript(t *testing.T, script string, report any, env ...string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is required for this test (tools/test.sh installs it)")
	}
	dir, _ := filepath.Abs("../tools/clienttest")
	for _, pkg := range []string{"openai", "@anthropic-ai/sdk"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("npm package %s is missing: run `npm ci` in %s (tools/test.sh does)", pkg, dir)
		}
	}
	cmd := exec.Command(node, filepath.Join(dir, script))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			out = append(out, ee.Stderr...)
		}
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	if err := json.Unmarshal(out, report); err != nil {
		t.Fatalf("node %s report: %v\n%s", script, err, out)
	}
}

type anthUsage struct {
	InputTokens  *int `json:"input_tokens"`
	OutputTokens int  `json:"output_tokens"`
}

// The official Anthropic Node client (npm @anthropic-ai/sdk) against FLM
// in front of every engine kind: create, stream: true, the stream helper,
// count_tokens (llama.cpp counts; the others answer NotFoundError), and
// its own error classes for a bad key, a model outside the key's scope and
// a malformed request.
func TestAnthropicNodeClient(t *testing.T) {
	for _, k := range engine.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			p, scoped := familyClientProxy(t, k)
			var rep struct {
				Create struct {
					Type, Role, Text string
					StopReason       string `json:"stop_reason"`
					Usage            anthUsage
				}
				Stream struct {
					Events []string
					Text   string
				}
				Helper struct {
					Text, Final string
					StopReason  string `json:"stop_reason"`
					Usage       anthUsage
				}
				CountTokens                    any
				BadKey, OutOfScope, BadRequest string
			}
			runClientScript(t, "anthropic.mjs", &rep, "FLM_ROOT_URL="+p.url, "FLM_API_KEY="+p.key.Plain,
				"FLM_MODEL=flm://"+string(k)+"/"+familyModel, "FLM_SCOPED_KEY="+scoped.Plain)
			ev := rep.Stream.Events
			if rep.Create.Type != "message" || rep.Create.Role != "assistant" || rep.Create.Text == "" || rep.Create.StopReason == "" ||
				rep.Create.Usage.InputTokens == nil || rep.Create.Usage.OutputTokens == 0 {
				t.Fatalf("create: %+v", rep.Create)
			}
			if len(ev) < 5 || ev[0] != "message_start" || ev[len(ev)-2] != "message_delta" || ev[len(ev)-1] != "message_stop" || rep.Stream.Text == "" {
				t.Fatalf("stream: %+v", rep.Stream)
			}
			if rep.Helper.Text == "" || rep.Helper.Text != rep.Helper.Final || rep.Helper.StopReason == "" || streamUsage(k) == (rep.Helper.Usage.OutputTokens == 0) {
				t.Fatalf("stream helper: %+v", rep.Helper)
			}
			wantCount := any("NotFoundError")
			if n, ok := rep.CountTokens.(float64); ok && k == engine.LlamaCPP && n > 0 {
				wantCount = n
			}
			if rep.CountTokens != wantCount || rep.BadKey != "AuthenticationError" || rep.OutOfScope != "PermissionDeniedError" || rep.BadRequest != "BadRequestError" {
				t.Fatalf("count_tokens %v, bad key %q, out of scope %q, bad request %q", rep.CountTokens, rep.BadKey, rep.OutOfScope, rep.BadRequest)
			}
		})
	}
}

// The official OpenAI Node client's Responses API (npm openai) against FLM
// in front of every engine kind: create, stream: true (sequence numbers
// from 0, in order), the responses.stream() helper, previous_response_id
// refused (BadRequestError), and its own error classes for a bad key and a
// model outside the key's scope.
func TestResponsesNodeClient(t *testing.T) {
	type usage struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	}
	for _, k := range engine.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			p, scoped := familyClientProxy(t, k)
			var rep struct {
				Create struct {
					Object, Status, Text string
					Usage                usage
				}
				Stream struct {
					Events  []string
					Text    string
					Ordered bool
					Final   *struct {
						Status string
						Usage  usage
					}
				}
				Helper struct {
					Text, Final, Status string
					Usage               usage
				}
				Previous, BadKey, OutOfScope string
			}
			runClientScript(t, "responses.mjs", &rep, "FLM_BASE_URL="+p.url+"/v1", "FLM_API_KEY="+p.key.Plain,
				"FLM_MODEL="+familyModel, "FLM_SCOPED_KEY="+scoped.Plain)
			if rep.Create.Object != "response" || rep.Create.Text == "" || rep.Create.Usage.OutputTokens == 0 {
				t.Fatalf("create: %+v", rep.Create)
			}
			ev := rep.Stream.Events
			if len(ev) < 5 || ev[0] != "response.created" || !rep.Stream.Ordered || rep.Stream.Text == "" || rep.Stream.Final == nil || streamUsage(k) == (rep.Stream.Final.Usage.OutputTokens == 0) {
				t.Fatalf("stream: %+v", rep.Stream)
			}
			if rep.Helper.Text == "" || rep.Helper.Text != rep.Helper.Final || streamUsage(k) == (rep.Helper.Usage.OutputTokens == 0) {
				t.Fatalf("stream helper: %+v", rep.Helper)
			}
			if rep.Previous != "BadRequestError" || rep.BadKey != "AuthenticationError" || rep.OutOfScope != "PermissionDeniedError" {
				t.Fatalf("previous_response_id %q, bad key %q, out of scope %q", rep.Previous, rep.BadKey, rep.OutOfScope)
			}
		})
	}
}
