package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/tools/enginefake"
)

// clientSetup runs a proxy in front of a fake Ollama with a chat and an
// embedding model.
func clientSetup(t *testing.T) *testProxy {
	t.Helper()
	src, key := newMemSource(t)
	f := startFake(t, enginefake.Options{Kind: enginefake.Ollama, Models: []enginefake.Model{{Name: "llama3:latest"}, {Name: "nomic-embed:latest", Embedding: true}}})
	src.addEngine("ollama", engine.Ollama, f.URL(), "llama3:latest", "nomic-embed:latest")
	return startProxy(t, src, key)
}

// The official Go client works unchanged against FLM.
func TestOpenAIGoClient(t *testing.T) {
	p := clientSetup(t)
	ctx := context.Background()
	c := openai.NewClient(option.WithBaseURL(p.url+"/v1"), option.WithAPIKey(p.key.Plain), option.WithMaxRetries(0))

	models, err := c.Models.List(ctx)
	if err != nil || !slices.ContainsFunc(models.Data, func(m openai.Model) bool { return m.ID == "flm://ollama/llama3:latest" }) {
		t.Fatalf("models: %v %+v", err, models)
	}
	chat, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "flm://ollama/llama3:latest",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
	})
	if err != nil || len(chat.Choices) == 0 || chat.Choices[0].Message.Content == "" || chat.Usage.TotalTokens == 0 {
		t.Fatalf("chat: %v %+v", err, chat)
	}
	// A stream that asks for usage ends with the engine's usage chunk; one
	// that does not gets only chunks with choices (a client reading
	// choices[0] of every chunk must not break).
	for _, askUsage := range []bool{true, false} {
		params := openai.ChatCompletionNewParams{
			Model:    "llama3",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
		}
		if askUsage {
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		}
		stream := c.Chat.Completions.NewStreaming(ctx, params)
		acc := openai.ChatCompletionAccumulator{}
		emptyChoices := 0
		for stream.Next() {
			if len(stream.Current().Choices) == 0 {
				emptyChoices++
			}
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil || len(acc.Choices) == 0 || acc.Choices[0].Message.Content == "" {
			t.Fatalf("stream (usage %v): %v %+v", askUsage, err, acc.Choices)
		}
		if askUsage && (acc.Usage.TotalTokens == 0 || acc.Usage.PromptTokens == 0 || emptyChoices != 1) {
			t.Fatalf("stream asking for usage: usage %+v, %d chunks without choices", acc.Usage, emptyChoices)
		}
		if !askUsage && (acc.Usage.TotalTokens != 0 || emptyChoices != 0) {
			t.Fatalf("stream not asking for usage: usage %+v, %d chunks without choices", acc.Usage, emptyChoices)
		}
	}
	emb, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "flm://ollama/nomic-embed:latest",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "b"}},
	})
	if err != nil || len(emb.Data) != 2 || len(emb.Data[0].Embedding) == 0 {
		t.Fatalf("embeddings: %v %+v", err, emb)
	}
	bad := openai.NewClient(option.WithBaseURL(p.url+"/v1"), option.WithAPIKey("flm_wrong"), option.WithMaxRetries(0))
	_, err = bad.Models.List(ctx)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Fatalf("bad key: %v", err)
	}
}

// The official Node client (npm openai) works unchanged against FLM.
// tools/test.sh installs it (npm ci in tools/clienttest).
func TestOpenAINodeClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is required for this test (tools/test.sh checks for it)")
	}
	dir, _ := filepath.Abs("../tools/clienttest")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai")); err != nil {
		t.Fatalf("run `npm ci` in %s first (tools/test.sh does)", dir)
	}
	p := clientSetup(t)
	cmd := exec.Command(node, filepath.Join(dir, "openai.mjs"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "FLM_BASE_URL="+p.url+"/v1", "FLM_API_KEY="+p.key.Plain,
		"FLM_CHAT_MODEL=flm://ollama/llama3:latest", "FLM_EMBED_MODEL=nomic-embed")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node client: %v\n%s", err, out)
	}
	var rep struct {
		Models []string
		Chat   struct {
			Content string
			Usage   struct {
				TotalTokens int `json:"total_tokens"`
			}
		}
		Stream struct {
			Text   string
			Chunks int
			Usage  *struct {
				TotalTokens int `json:"total_tokens"`
			}
		}
		Embeddings struct{ Count, Dims int }
		BadKey     string
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("node report: %v\n%s", err, out)
	}
	if !slices.Contains(rep.Models, "flm://ollama/llama3:latest") || rep.Chat.Content == "" || rep.Chat.Usage.TotalTokens == 0 ||
		rep.Stream.Text == "" || rep.Stream.Usage == nil || rep.Embeddings.Count != 2 || rep.Embeddings.Dims == 0 || rep.BadKey != "AuthenticationError" {
		t.Fatalf("node client report: %s", out)
	}
}
