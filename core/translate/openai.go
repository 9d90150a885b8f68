package translate

import (
	"bytes"
	"encoding/json"

	"github.com/unjuno/flm/core/engine"
)

// Target is the model a translated request goes to.
type Target struct {
	// Model is the engine's own name for the model
	// (engine.Model.UpstreamName()).
	Model string
	// Caps are the model's capabilities; a request needing one it lacks
	// (tools, vision) is refused instead of being answered without it.
	Caps engine.Capabilities
}

// Chat Completions paths on the engines.
const (
	ChatPath        = "/v1/chat/completions"
	CompletionsPath = "/v1/completions"
	EmbeddingsPath  = "/v1/embeddings"
)

// ChatRequest is the body FLM sends to an engine's /v1/chat/completions.
// Optional fields are pointers or omitted when empty, so an engine only sees
// what the client asked for.
type ChatRequest struct {
	Model             string          `json:"model"`
	Messages          []ChatMessage   `json:"messages"`
	MaxTokens         *int64          `json:"max_tokens,omitempty"`
	Temperature       *float64        `json:"temperature,omitempty"`
	TopP              *float64        `json:"top_p,omitempty"`
	TopK              *int64          `json:"top_k,omitempty"`
	MinP              *float64        `json:"min_p,omitempty"`
	Stop              []string        `json:"stop,omitempty"`
	Seed              *int64          `json:"seed,omitempty"`
	FrequencyPenalty  *float64        `json:"frequency_penalty,omitempty"`
	PresencePenalty   *float64        `json:"presence_penalty,omitempty"`
	Stream            bool            `json:"stream,omitempty"`
	StreamOptions     *StreamOptions  `json:"stream_options,omitempty"`
	Tools             []Tool          `json:"tools,omitempty"`
	ToolChoice        json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls,omitempty"`
	ResponseFormat    json.RawMessage `json:"response_format,omitempty"`
}

// CompletionRequest is the body FLM sends to an engine's /v1/completions
// (Ollama's raw /api/generate).
type CompletionRequest struct {
	Model            string         `json:"model"`
	Prompt           string         `json:"prompt"`
	MaxTokens        *int64         `json:"max_tokens,omitempty"`
	Temperature      *float64       `json:"temperature,omitempty"`
	TopP             *float64       `json:"top_p,omitempty"`
	TopK             *int64         `json:"top_k,omitempty"`
	MinP             *float64       `json:"min_p,omitempty"`
	Stop             []string       `json:"stop,omitempty"`
	Seed             *int64         `json:"seed,omitempty"`
	FrequencyPenalty *float64       `json:"frequency_penalty,omitempty"`
	PresencePenalty  *float64       `json:"presence_penalty,omitempty"`
	Stream           bool           `json:"stream,omitempty"`
	StreamOptions    *StreamOptions `json:"stream_options,omitempty"`
}

// EmbeddingsRequest is the body FLM sends to an engine's /v1/embeddings.
// Input is a string or an array of strings.
type EmbeddingsRequest struct {
	Model      string `json:"model"`
	Input      any    `json:"input"`
	Dimensions *int64 `json:"dimensions,omitempty"`
}

// StreamOptions asks for the final usage chunk.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// WithUsage is the stream_options every translated stream sends: the usage
// a client's API family reports comes from the engine's usage chunk.
func WithUsage() *StreamOptions { return &StreamOptions{IncludeUsage: true} }

// ChatMessage is one message of a ChatRequest.
type ChatMessage struct {
	Role       string     `json:"role"`
	Content    Content    `json:"content"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// Content is a message's content: text, or parts (text and images), or
// null (an assistant message that only calls tools).
type Content struct {
	Text  string
	Parts []Part
	Null  bool
}

// MarshalJSON writes parts, null or the text.
func (c Content) MarshalJSON() ([]byte, error) {
	switch {
	case c.Parts != nil:
		return Marshal(c.Parts)
	case c.Null:
		return []byte("null"), nil
	}
	return AppendString(nil, c.Text), nil
}

// Part is one part of a message's content.
type Part struct {
	Type     string    `json:"type"` // "text" or "image_url"
	Text     string    `json:"text,omitempty"`
	ImageURL *ImageURL `json:"image_url,omitempty"`
}

// ImageURL is an image part's source: an https URL or a data: URL.
type ImageURL struct {
	URL string `json:"url"`
}

// TextPart and ImagePart build parts.
func TextPart(s string) Part          { return Part{Type: "text", Text: s} }
func ImagePart(url string) Part       { return Part{Type: "image_url", ImageURL: &ImageURL{URL: url}} }
func DataURL(mime, b64 string) string { return "data:" + mime + ";base64," + b64 }

// Tool is a function the model may call.
type Tool struct {
	Type     string   `json:"type"` // "function"
	Function Function `json:"function"`
}

// Function describes a tool's function.
type Function struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// ToolCall is a call the assistant made, in a request's history or in an
// engine's answer.
type ToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function CallFunction `json:"function"`
}

// CallFunction is the function of a ToolCall; Arguments is JSON text.
type CallFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// ToolChoice values in Chat Completions' form.
var (
	ToolChoiceAuto     = json.RawMessage(`"auto"`)
	ToolChoiceNone     = json.RawMessage(`"none"`)
	ToolChoiceRequired = json.RawMessage(`"required"`)
)

// ToolChoiceFunction forces one function.
func ToolChoiceFunction(name string) json.RawMessage {
	b := append([]byte(`{"type":"function","function":{"name":`), AppendString(nil, name)...)
	return append(b, "}}"...)
}

// ChatResponse is an engine's non-streamed answer from /v1/chat/completions
// or /v1/completions (Text).
type ChatResponse struct {
	ID      string   `json:"id"`
	Model   string   `json:"model"`
	Choices []Choice `json:"choices"`
	Usage   *Usage   `json:"usage"`
	Timings *Timings `json:"timings"`
}

// Choice is one choice of a ChatResponse.
type Choice struct {
	Index        int             `json:"index"`
	Message      Message         `json:"message"`
	Text         string          `json:"text"`
	FinishReason string          `json:"finish_reason"`
	StopReason   json.RawMessage `json:"stop_reason"`
}

// Message is an answer's message.
type Message struct {
	Content          *string    `json:"content"`
	ReasoningContent string     `json:"reasoning_content"` // llama.cpp, vLLM
	Reasoning        string     `json:"reasoning"`         // Ollama, newer vLLM
	ToolCalls        []ToolCall `json:"tool_calls"`
}

// Thinking is the message's reasoning text, whichever field carried it.
func (m *Message) Thinking() string {
	if m.ReasoningContent != "" {
		return m.ReasoningContent
	}
	return m.Reasoning
}

// Usage is an engine's token count.
type Usage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	// FLMEstimated marks an estimated usage chunk that earlier FLM versions
	// added to streams whose engine sent none (no longer made); such a
	// chunk's numbers are not the engine's count and are ignored.
	FLMEstimated bool `json:"flm_estimated"`
}

// CachedTokens is the count of prompt tokens served from the engine's cache
// and whether the engine reported it.
func (u *Usage) CachedTokens() (int64, bool) {
	if u == nil || u.PromptTokensDetails == nil {
		return 0, false
	}
	return u.PromptTokensDetails.CachedTokens, true
}

// Timings are llama-server's own measurements of a request.
type Timings struct {
	PromptMS    float64 `json:"prompt_ms"`
	PredictedMS float64 `json:"predicted_ms"`
}

// DecodeResponse decodes an engine's non-streamed answer. An answer without
// a choice cannot be translated.
func DecodeResponse(body []byte) (*ChatResponse, error) {
	var r ChatResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, EngineError("the engine's answer is not a valid Chat Completions response")
	}
	if len(r.Choices) == 0 {
		return nil, EngineError("the engine's answer has no choices")
	}
	return &r, nil
}

// RealUsage is the engine's own usage, or nil when it reported none (or
// only FLM's estimate).
func RealUsage(u *Usage) *Usage {
	if u == nil || u.FLMEstimated {
		return nil
	}
	return u
}

// Chunk is one event of an engine's Chat Completions (or Completions)
// stream.
type Chunk struct {
	Choices []ChunkChoice   `json:"choices"`
	Usage   *Usage          `json:"usage"`
	Timings *Timings        `json:"timings"`
	Error   json.RawMessage `json:"error"`
}

// ChunkChoice is one choice of a Chunk.
type ChunkChoice struct {
	Index        int             `json:"index"`
	Delta        Delta           `json:"delta"`
	Text         string          `json:"text"` // /v1/completions streams
	FinishReason *string         `json:"finish_reason"`
	StopReason   json.RawMessage `json:"stop_reason"`
}

// Delta is the increment a chunk carries.
type Delta struct {
	Content          *string         `json:"content"`
	ReasoningContent string          `json:"reasoning_content"`
	Reasoning        string          `json:"reasoning"`
	ToolCalls        []ToolCallDelta `json:"tool_calls"`
}

// Thinking is the delta's reasoning text, whichever field carried it.
func (d *Delta) Thinking() string {
	if d.ReasoningContent != "" {
		return d.ReasoningContent
	}
	return d.Reasoning
}

// ToolCallDelta is a streamed piece of a tool call: the first piece of a
// call carries its id and name, the following ones more of its arguments.
type ToolCallDelta struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// Done is the payload that ends an OpenAI stream.
var Done = []byte("[DONE]")

// IsDone reports whether a stream payload is the [DONE] marker.
func IsDone(payload []byte) bool { return bytes.Equal(bytes.TrimSpace(payload), Done) }

// DecodeChunk decodes a stream payload into c (reset first, so a converter
// can reuse one Chunk for a whole stream).
func DecodeChunk(payload []byte, c *Chunk) error {
	// encoding/json decodes into the elements a slice already has without
	// zeroing them: clear them, or a field of the last chunk survives.
	cs := c.Choices[:cap(c.Choices)]
	clear(cs)
	*c = Chunk{Choices: cs[:0]}
	if err := json.Unmarshal(payload, c); err != nil {
		return EngineError("the engine sent a malformed stream event")
	}
	return nil
}

// First is the chunk's first choice (FLM never asks for more than one), or
// nil.
func (c *Chunk) First() *ChunkChoice {
	for i := range c.Choices {
		if c.Choices[i].Index == 0 {
			return &c.Choices[i]
		}
	}
	return nil
}

// ErrorMessage extracts the message of an engine's error value: an object
// with "message", or a string. Clipped to 500 bytes.
func ErrorMessage(raw json.RawMessage) string {
	var obj struct {
		Message string `json:"message"`
	}
	var s string
	msg := ""
	switch {
	case json.Unmarshal(raw, &obj) == nil && obj.Message != "":
		msg = obj.Message
	case json.Unmarshal(raw, &s) == nil && s != "":
		msg = s
	default:
		msg = "the engine reported an error"
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return msg
}

// StopString is the stop sequence that ended a generation, when the engine
// says (vLLM's "stop_reason" holds the matched string; an integer there is
// a stop token, not a sequence).
func StopString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil || s == "" {
		return "", false
	}
	return s, true
}
