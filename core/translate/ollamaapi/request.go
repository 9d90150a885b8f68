package ollamaapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/unjuno/flm/core/translate"
)

type wireOptions struct {
	Temperature      *float64        `json:"temperature"`
	TopP             *float64        `json:"top_p"`
	TopK             *int64          `json:"top_k"`
	MinP             *float64        `json:"min_p"`
	NumPredict       *int64          `json:"num_predict"`
	Stop             json.RawMessage `json:"stop"`
	Seed             *int64          `json:"seed"`
	FrequencyPenalty *float64        `json:"frequency_penalty"`
	PresencePenalty  *float64        `json:"presence_penalty"`
}

// sampling is what the options map to on the OpenAI side.
type sampling struct {
	maxTokens   *int64
	temperature *float64
	topP        *float64
	topK        *int64
	minP        *float64
	stop        []string
	seed        *int64
	freq, pres  *float64
}

func parseOptions(o *wireOptions) (sampling, error) {
	if o == nil {
		return sampling{}, nil
	}
	s := sampling{temperature: o.Temperature, topP: o.TopP, topK: o.TopK, minP: o.MinP, seed: o.Seed, freq: o.FrequencyPenalty, pres: o.PresencePenalty}
	if o.NumPredict != nil && *o.NumPredict > 0 { // -1: no limit, -2: fill the context
		s.maxTokens = o.NumPredict
	}
	if len(o.Stop) > 0 && string(o.Stop) != "null" {
		var one string
		if json.Unmarshal(o.Stop, &one) == nil {
			s.stop = []string{one}
		} else if json.Unmarshal(o.Stop, &s.stop) != nil {
			return s, translate.Invalid("options.stop", "options.stop must be a string or an array of strings")
		}
	}
	return s, nil
}

// format maps Ollama's format ("json" or a JSON schema) to response_format.
func format(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" || string(raw) == `""` {
		return nil, nil
	}
	if string(raw) == `"json"` {
		return json.RawMessage(`{"type":"json_object"}`), nil
	}
	schema, ok := translate.CompactObject(raw)
	if !ok {
		return nil, translate.Invalid("format", `format must be "json" or a JSON schema object`)
	}
	b := []byte(`{"type":"json_schema","json_schema":{"name":"response","schema":`)
	b = append(b, schema...)
	return append(b, "}}"...), nil
}

// stream reads Ollama's stream flag: true unless the client sent false.
func stream(b *bool) bool { return b == nil || *b }

// imageURL turns an Ollama image (bare base64) into a data: URL; Ollama
// sends no media type, so it is read from the image's first bytes.
func imageURL(b64, param string) (string, error) {
	head := b64
	if len(head) > 24 {
		head = head[:24]
	}
	head = head[:len(head)/4*4]
	raw, err := base64.StdEncoding.DecodeString(head)
	if err != nil || len(raw) < 4 {
		return "", translate.Invalid(param, "images must be base64-encoded PNG, JPEG, GIF or WebP files")
	}
	mime := ""
	switch {
	case raw[0] == 0x89 && string(raw[1:4]) == "PNG":
		mime = "image/png"
	case raw[0] == 0xff && raw[1] == 0xd8 && raw[2] == 0xff:
		mime = "image/jpeg"
	case string(raw[:4]) == "GIF8":
		mime = "image/gif"
	case len(raw) >= 12 && string(raw[:4]) == "RIFF" && string(raw[8:12]) == "WEBP":
		mime = "image/webp"
	default:
		return "", translate.Invalid(param, "images must be base64-encoded PNG, JPEG, GIF or WebP files")
	}
	return translate.DataURL(mime, b64), nil
}

// ---- /api/chat ----

type wireChat struct {
	Model     string          `json:"model"`
	Messages  []wireMessage   `json:"messages"`
	Stream    *bool           `json:"stream"`
	Format    json.RawMessage `json:"format"`
	Options   *wireOptions    `json:"options"`
	Tools     []wireTool      `json:"tools"`
	Think     json.RawMessage `json:"think"`
	KeepAlive json.RawMessage `json:"keep_alive"`
}

type wireMessage struct {
	Role       string         `json:"role"`
	Content    string         `json:"content"`
	Images     []string       `json:"images"`
	ToolCalls  []wireToolCall `json:"tool_calls"`
	ToolName   string         `json:"tool_name"`
	ToolCallID string         `json:"tool_call_id"`
}

type wireToolCall struct {
	ID       string `json:"id"`
	Function struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

type wireTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// ChatRequest is a parsed /api/chat request.
type ChatRequest struct {
	// Model is the model as the client named it; answers echo it.
	Model  string
	Stream bool
	// LoadOnly: no messages, Ollama's "load the model" call; answer with
	// LoadResponse instead of calling the engine. Unload: the same with
	// keep_alive 0, which FLM refuses (UnloadUnsupported).
	LoadOnly, Unload bool
	UsesTools        bool
	UsesImages       bool
	// NoThinking: the client set think:false.
	NoThinking bool

	w        wireChat
	messages []translate.ChatMessage
	opts     sampling
	format   json.RawMessage
	tools    []translate.Tool
}

// ParseChat validates a POST /api/chat body.
func ParseChat(body []byte) (*ChatRequest, error) {
	r := &ChatRequest{}
	if err := translate.DecodeRequest(body, &r.w); err != nil {
		return nil, err
	}
	w := &r.w
	if w.Model == "" {
		return nil, translate.Invalid("model", "model is required")
	}
	r.Model, r.Stream = w.Model, stream(w.Stream)
	r.NoThinking = string(w.Think) == "false"
	var err error
	if r.opts, err = parseOptions(w.Options); err != nil {
		return nil, err
	}
	if r.format, err = format(w.Format); err != nil {
		return nil, err
	}
	for i, t := range w.Tools {
		p := fmt.Sprintf("tools[%d]", i)
		if t.Type != "" && t.Type != "function" {
			return nil, translate.Unsupported(p+".type", "only function tools can be translated")
		}
		if t.Function.Name == "" {
			return nil, translate.Invalid(p+".function.name", "every tool needs a function name")
		}
		var params json.RawMessage
		if len(t.Function.Parameters) > 0 && string(t.Function.Parameters) != "null" {
			var ok bool
			if params, ok = translate.CompactObject(t.Function.Parameters); !ok {
				return nil, translate.Invalid(p+".function.parameters", "a tool's parameters must be a JSON Schema object")
			}
		}
		r.tools = append(r.tools, translate.Tool{Type: "function", Function: translate.Function{Name: t.Function.Name, Description: t.Function.Description, Parameters: params}})
	}
	r.UsesTools = len(r.tools) > 0
	if len(w.Messages) == 0 {
		r.LoadOnly = true
		r.Unload = keepAliveZero(w.KeepAlive)
		return r, nil
	}
	if r.messages, err = r.buildMessages(); err != nil {
		return nil, err
	}
	return r, nil
}

func keepAliveZero(raw json.RawMessage) bool {
	switch string(raw) {
	case "0", `"0"`, `"0s"`, `"0m"`:
		return true
	}
	return false
}

func (r *ChatRequest) buildMessages() ([]translate.ChatMessage, error) {
	out := make([]translate.ChatMessage, 0, len(r.w.Messages))
	// pending are the ids of the last assistant message's calls not yet
	// answered; a tool message without tool_call_id answers the first one
	// (with the same name, when tool_name is given).
	type call struct{ id, name string }
	var pending []call
	for i, m := range r.w.Messages {
		p := fmt.Sprintf("messages[%d]", i)
		msg := translate.ChatMessage{Role: m.Role, Content: translate.Content{Text: m.Content}}
		switch m.Role {
		case "system", "user":
		case "assistant":
			pending = pending[:0]
			for j, tc := range m.ToolCalls {
				cp := fmt.Sprintf("%s.tool_calls[%d]", p, j)
				if tc.Function.Name == "" {
					return nil, translate.Invalid(cp+".function.name", "a tool call needs a function name")
				}
				args := []byte("{}")
				if len(tc.Function.Arguments) > 0 && string(tc.Function.Arguments) != "null" {
					var ok bool
					if args, ok = translate.CompactObject(tc.Function.Arguments); !ok {
						return nil, translate.Invalid(cp+".function.arguments", "a tool call's arguments must be an object")
					}
				}
				id := tc.ID
				if id == "" {
					id = "call_" + strconv.Itoa(i) + "_" + strconv.Itoa(j)
				}
				msg.ToolCalls = append(msg.ToolCalls, translate.ToolCall{ID: id, Type: "function", Function: translate.CallFunction{Name: tc.Function.Name, Arguments: string(args)}})
				pending = append(pending, call{id, tc.Function.Name})
			}
			if len(msg.ToolCalls) > 0 {
				r.UsesTools = true
				msg.Content.Null = m.Content == ""
			}
		case "tool":
			r.UsesTools = true
			msg.ToolCallID = m.ToolCallID
			if msg.ToolCallID == "" {
				k := -1
				for j, c := range pending {
					if m.ToolName == "" || c.name == m.ToolName {
						k = j
						break
					}
				}
				if k < 0 {
					return nil, translate.Invalid(p, "a tool message must answer a tool call of the assistant message before it")
				}
				msg.ToolCallID = pending[k].id
				pending = append(pending[:k], pending[k+1:]...)
			}
		default:
			return nil, translate.Invalid(p+".role", `a message's role must be "system", "user", "assistant" or "tool"`)
		}
		if len(m.Images) > 0 {
			if m.Role != "user" {
				return nil, translate.Unsupported(p+".images", "images can only be translated in user messages")
			}
			parts := []translate.Part{}
			if m.Content != "" {
				parts = append(parts, translate.TextPart(m.Content))
			}
			for j, img := range m.Images {
				u, err := imageURL(img, fmt.Sprintf("%s.images[%d]", p, j))
				if err != nil {
					return nil, err
				}
				parts = append(parts, translate.ImagePart(u))
			}
			msg.Content = translate.Content{Parts: parts}
			r.UsesImages = true
		}
		out = append(out, msg)
	}
	return out, nil
}

func check(uses bool, ok bool, param, what, model string) error {
	if uses && !ok {
		return translate.Unsupported(param, "the model %s does not support %s", translate.Quote(model), what)
	}
	return nil
}

// ChatBody builds the engine's /v1/chat/completions body.
func (r *ChatRequest) ChatBody(t translate.Target) ([]byte, error) {
	if err := check(r.UsesTools, t.Caps.Tools, "tools", "tools", r.Model); err != nil {
		return nil, err
	}
	if err := check(r.UsesImages, t.Caps.Vision, "messages", "images", r.Model); err != nil {
		return nil, err
	}
	c := chatRequest(t.Model, r.messages, r.opts, r.Stream)
	c.Tools, c.ResponseFormat = r.tools, r.format
	return translate.Marshal(c)
}

func chatRequest(model string, msgs []translate.ChatMessage, o sampling, stream bool) *translate.ChatRequest {
	c := &translate.ChatRequest{
		Model: model, Messages: msgs, MaxTokens: o.maxTokens, Temperature: o.temperature, TopP: o.topP, TopK: o.topK, MinP: o.minP,
		Stop: o.stop, Seed: o.seed, FrequencyPenalty: o.freq, PresencePenalty: o.pres, Stream: stream,
	}
	if stream {
		c.StreamOptions = translate.WithUsage()
	}
	return c
}

// UnloadUnsupported is the answer to Ollama's unload call (keep_alive 0
// without a prompt): FLM does not manage the engines' memory.
func UnloadUnsupported() *translate.Error {
	return translate.Unsupported("keep_alive", "FLM cannot unload models; the engine manages its memory (for Ollama itself, use its own API or `ollama stop`)")
}

// ---- /api/generate ----

type wireGenerate struct {
	Model     string          `json:"model"`
	Prompt    string          `json:"prompt"`
	Suffix    string          `json:"suffix"`
	System    string          `json:"system"`
	Template  string          `json:"template"`
	Context   []int64         `json:"context"`
	Stream    *bool           `json:"stream"`
	Raw       bool            `json:"raw"`
	Format    json.RawMessage `json:"format"`
	Images    []string        `json:"images"`
	Options   *wireOptions    `json:"options"`
	Think     json.RawMessage `json:"think"`
	KeepAlive json.RawMessage `json:"keep_alive"`
}

// GenerateRequest is a parsed /api/generate request.
type GenerateRequest struct {
	Model            string
	Stream           bool
	Raw              bool
	LoadOnly, Unload bool
	UsesImages       bool
	NoThinking       bool

	w      wireGenerate
	opts   sampling
	format json.RawMessage
	images []string // data: URLs
}

// ParseGenerate validates a POST /api/generate body.
func ParseGenerate(body []byte) (*GenerateRequest, error) {
	r := &GenerateRequest{}
	if err := translate.DecodeRequest(body, &r.w); err != nil {
		return nil, err
	}
	w := &r.w
	if w.Model == "" {
		return nil, translate.Invalid("model", "model is required")
	}
	r.Model, r.Stream, r.Raw = w.Model, stream(w.Stream), w.Raw
	r.NoThinking = string(w.Think) == "false"
	switch {
	case w.Template != "":
		return nil, translate.Unsupported("template", "a custom prompt template cannot be passed to the engine; use raw with a formatted prompt, or /api/chat")
	case len(w.Context) > 0:
		return nil, translate.Unsupported("context", "context (Ollama's token memory) cannot be translated; keep the conversation with /api/chat")
	case w.Suffix != "":
		return nil, translate.Unsupported("suffix", "suffix (fill-in-the-middle) cannot be translated")
	}
	var err error
	if r.opts, err = parseOptions(w.Options); err != nil {
		return nil, err
	}
	if r.format, err = format(w.Format); err != nil {
		return nil, err
	}
	if r.Raw && (r.format != nil || len(w.Images) > 0) {
		return nil, translate.Unsupported("raw", "raw prompts go to the engine's completions endpoint, which takes neither format nor images")
	}
	for j, img := range w.Images {
		u, err := imageURL(img, fmt.Sprintf("images[%d]", j))
		if err != nil {
			return nil, err
		}
		r.images = append(r.images, u)
	}
	r.UsesImages = len(r.images) > 0
	if w.Prompt == "" && len(w.Images) == 0 {
		r.LoadOnly = true
		r.Unload = keepAliveZero(w.KeepAlive)
	}
	return r, nil
}

// Path is the engine endpoint the request goes to: completions for raw
// prompts, chat otherwise.
func (r *GenerateRequest) Path() string {
	if r.Raw {
		return translate.CompletionsPath
	}
	return translate.ChatPath
}

// Body builds the engine's body for Path.
func (r *GenerateRequest) Body(t translate.Target) ([]byte, error) {
	if err := check(r.UsesImages, t.Caps.Vision, "images", "images", r.Model); err != nil {
		return nil, err
	}
	o := r.opts
	if r.Raw {
		c := &translate.CompletionRequest{
			Model: t.Model, Prompt: r.w.Prompt, MaxTokens: o.maxTokens, Temperature: o.temperature, TopP: o.topP, TopK: o.topK, MinP: o.minP,
			Stop: o.stop, Seed: o.seed, FrequencyPenalty: o.freq, PresencePenalty: o.pres, Stream: r.Stream,
		}
		if r.Stream {
			c.StreamOptions = translate.WithUsage()
		}
		return translate.Marshal(c)
	}
	var msgs []translate.ChatMessage
	if r.w.System != "" {
		msgs = append(msgs, translate.ChatMessage{Role: "system", Content: translate.Content{Text: r.w.System}})
	}
	user := translate.ChatMessage{Role: "user", Content: translate.Content{Text: r.w.Prompt}}
	if len(r.images) > 0 {
		parts := []translate.Part{}
		if r.w.Prompt != "" {
			parts = append(parts, translate.TextPart(r.w.Prompt))
		}
		for _, u := range r.images {
			parts = append(parts, translate.ImagePart(u))
		}
		user.Content = translate.Content{Parts: parts}
	}
	c := chatRequest(t.Model, append(msgs, user), o, r.Stream)
	c.ResponseFormat = r.format
	return translate.Marshal(c)
}

// ---- /api/embed and /api/embeddings ----

type wireEmbed struct {
	Model      string          `json:"model"`
	Input      json.RawMessage `json:"input"`
	Prompt     *string         `json:"prompt"`
	Dimensions *int64          `json:"dimensions"`
}

// EmbedRequest is a parsed /api/embed (or legacy /api/embeddings) request.
type EmbedRequest struct {
	Model string
	// Legacy: /api/embeddings, one prompt, answered as {"embedding":[…]}.
	Legacy bool
	// LoadOnly: nothing to embed (Ollama's load call); answer with
	// LoadResponse.
	LoadOnly bool

	input any // string or []string
	dims  *int64
}

// ParseEmbed validates a POST /api/embed body.
func ParseEmbed(body []byte) (*EmbedRequest, error) {
	var w wireEmbed
	if err := translate.DecodeRequest(body, &w); err != nil {
		return nil, err
	}
	if w.Model == "" {
		return nil, translate.Invalid("model", "model is required")
	}
	r := &EmbedRequest{Model: w.Model, dims: w.Dimensions}
	if w.Dimensions != nil && *w.Dimensions < 1 {
		return nil, translate.Invalid("dimensions", "dimensions must be at least 1")
	}
	in := w.Input
	var one string
	var many []string
	switch {
	case len(in) == 0 || string(in) == "null":
		r.LoadOnly = true
	case json.Unmarshal(in, &one) == nil:
		r.input, r.LoadOnly = one, one == ""
	case json.Unmarshal(in, &many) == nil:
		r.input, r.LoadOnly = many, len(many) == 0
	default:
		return nil, translate.Invalid("input", "input must be a string or an array of strings")
	}
	return r, nil
}

// ParseEmbeddings validates a POST /api/embeddings (legacy) body.
func ParseEmbeddings(body []byte) (*EmbedRequest, error) {
	var w wireEmbed
	if err := translate.DecodeRequest(body, &w); err != nil {
		return nil, err
	}
	if w.Model == "" {
		return nil, translate.Invalid("model", "model is required")
	}
	r := &EmbedRequest{Model: w.Model, Legacy: true}
	if w.Prompt == nil || *w.Prompt == "" {
		r.LoadOnly = true
	} else {
		r.input = *w.Prompt
	}
	return r, nil
}

// EmbeddingsBody builds the engine's /v1/embeddings body. Whether the
// model embeds is the engine's to say (llama-server without --embeddings
// answers 501), as on the OpenAI path.
func (r *EmbedRequest) EmbeddingsBody(t translate.Target) ([]byte, error) {
	return translate.Marshal(&translate.EmbeddingsRequest{Model: t.Model, Input: r.input, Dimensions: r.dims})
}

// ---- /api/show ----

// ParseShow reads the model name of a POST /api/show body ("model", or the
// older "name").
func ParseShow(body []byte) (string, error) {
	var w struct {
		Model string `json:"model"`
		Name  string `json:"name"`
	}
	if err := translate.DecodeRequest(body, &w); err != nil {
		return "", err
	}
	if w.Model == "" {
		w.Model = w.Name
	}
	if w.Model == "" {
		return "", translate.Invalid("model", "model is required")
	}
	return w.Model, nil
}
