package responses

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/unjuno/flm/core/translate"
)

type wireRequest struct {
	Model             string            `json:"model"`
	Input             json.RawMessage   `json:"input"`
	Instructions      *string           `json:"instructions"`
	MaxOutputTokens   *int64            `json:"max_output_tokens"`
	Temperature       *float64          `json:"temperature"`
	TopP              *float64          `json:"top_p"`
	Stream            *bool             `json:"stream"`
	Tools             []json.RawMessage `json:"tools"`
	ToolChoice        json.RawMessage   `json:"tool_choice"`
	ParallelToolCalls *bool             `json:"parallel_tool_calls"`
	Text              *struct {
		Format json.RawMessage `json:"format"`
	} `json:"text"`
	Metadata           map[string]json.RawMessage `json:"metadata"`
	PreviousResponseID *string                    `json:"previous_response_id"`
	Conversation       json.RawMessage            `json:"conversation"`
	Background         *bool                      `json:"background"`
	Prompt             json.RawMessage            `json:"prompt"`
	TopLogprobs        *int64                     `json:"top_logprobs"`
	Include            []string                   `json:"include"`
	SafetyIdentifier   *string                    `json:"safety_identifier"`
	PromptCacheKey     *string                    `json:"prompt_cache_key"`
	MaxToolCalls       *int64                     `json:"max_tool_calls"`
}

type wireTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
	Strict      *bool           `json:"strict"`
}

type wireItem struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments *string         `json:"arguments"`
	Output    json.RawMessage `json:"output"`
}

type wirePart struct {
	Type     string  `json:"type"`
	Text     string  `json:"text"`
	Refusal  string  `json:"refusal"`
	ImageURL *string `json:"image_url"`
	FileID   *string `json:"file_id"`
}

// Request is a parsed, validated Responses request.
type Request struct {
	// Model is the model as the client named it; responses echo it.
	Model      string
	Stream     bool
	UsesTools  bool
	UsesImages bool

	w        wireRequest
	tools    []translate.Tool
	choice   json.RawMessage // tool_choice in Chat Completions' form
	format   json.RawMessage // response_format in Chat Completions' form
	messages []translate.ChatMessage
}

func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// ParseRequest validates a POST /v1/responses body.
func ParseRequest(body []byte) (*Request, error) {
	r := &Request{}
	if err := translate.DecodeRequest(body, &r.w); err != nil {
		return nil, err
	}
	w := &r.w
	if w.Model == "" {
		return nil, translate.Invalid("model", `"model" is required`)
	}
	r.Model = w.Model
	if w.Stream != nil {
		r.Stream = *w.Stream
	}
	const stateless = "FLM does not store responses or conversations; send the whole conversation in \"input\""
	switch {
	case w.PreviousResponseID != nil && *w.PreviousResponseID != "":
		return nil, translate.Unsupported("previous_response_id", "previous_response_id is not supported: %s", stateless)
	case present(w.Conversation):
		return nil, translate.Unsupported("conversation", "conversation is not supported: %s", stateless)
	case w.Background != nil && *w.Background:
		return nil, translate.Unsupported("background", "background responses are not supported: FLM does not store responses")
	case present(w.Prompt):
		return nil, translate.Unsupported("prompt", "stored prompts are not supported: send the prompt's text in \"instructions\" and \"input\"")
	case w.TopLogprobs != nil && *w.TopLogprobs > 0:
		return nil, translate.Unsupported("top_logprobs", "log probabilities are not supported on the Responses API")
	case w.MaxOutputTokens != nil && *w.MaxOutputTokens < 1:
		return nil, translate.Invalid("max_output_tokens", `"max_output_tokens" must be at least 1`)
	}
	for k, v := range w.Metadata {
		if len(v) == 0 || v[0] != '"' {
			return nil, translate.Invalid("metadata."+k, "metadata values must be strings")
		}
	}
	for _, inc := range w.Include {
		if inc == "message.output_text.logprobs" {
			return nil, translate.Unsupported("include", "log probabilities are not supported on the Responses API")
		}
	}
	if err := r.parseTools(); err != nil {
		return nil, err
	}
	if err := r.parseFormat(); err != nil {
		return nil, err
	}
	var err error
	if r.messages, err = r.buildMessages(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Request) parseTools() error {
	for i, raw := range r.w.Tools {
		p := fmt.Sprintf("tools[%d]", i)
		var t wireTool
		if err := json.Unmarshal(raw, &t); err != nil {
			return translate.Invalid(p, "each tool must be an object")
		}
		if t.Type != "function" {
			return translate.Unsupported(p+".type", "the tool type %s is one of OpenAI's hosted tools, which engines do not have; only function tools can be translated", translate.Quote(t.Type))
		}
		if t.Name == "" {
			return translate.Invalid(p+".name", "every function tool needs a name")
		}
		var params json.RawMessage
		if present(t.Parameters) {
			var ok bool
			if params, ok = translate.CompactObject(t.Parameters); !ok {
				return translate.Invalid(p+".parameters", "a function tool's parameters must be a JSON Schema object")
			}
		}
		r.tools = append(r.tools, translate.Tool{Type: "function", Function: translate.Function{Name: t.Name, Description: t.Description, Parameters: params, Strict: t.Strict}})
	}
	r.UsesTools = len(r.tools) > 0
	tc := r.w.ToolChoice
	if !present(tc) {
		return nil
	}
	var s string
	if json.Unmarshal(tc, &s) == nil {
		switch s {
		case "auto", "none", "required":
			r.choice = translate.AppendString(nil, s)
			return nil
		}
		return translate.Invalid("tool_choice", `tool_choice must be "auto", "none", "required" or a function`)
	}
	var obj struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if json.Unmarshal(tc, &obj) != nil {
		return translate.Invalid("tool_choice", `tool_choice must be "auto", "none", "required" or a function`)
	}
	if obj.Type != "function" {
		return translate.Unsupported("tool_choice.type", "tool_choice of type %s cannot be translated; only functions can be forced", translate.Quote(obj.Type))
	}
	if obj.Name == "" {
		return translate.Invalid("tool_choice.name", "a forced function needs a name")
	}
	r.choice = translate.ToolChoiceFunction(obj.Name)
	return nil
}

func (r *Request) parseFormat() error {
	if r.w.Text == nil || !present(r.w.Text.Format) {
		return nil
	}
	var f struct {
		Type        string          `json:"type"`
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Schema      json.RawMessage `json:"schema"`
		Strict      *bool           `json:"strict"`
	}
	if json.Unmarshal(r.w.Text.Format, &f) != nil {
		return translate.Invalid("text.format", "text.format must be an object")
	}
	switch f.Type {
	case "text":
	case "json_object":
		r.format = json.RawMessage(`{"type":"json_object"}`)
	case "json_schema":
		schema, ok := translate.CompactObject(f.Schema)
		if !ok || f.Name == "" {
			return translate.Invalid("text.format", "a json_schema format needs a name and a schema object")
		}
		type js struct {
			Name        string          `json:"name"`
			Description string          `json:"description,omitempty"`
			Schema      json.RawMessage `json:"schema"`
			Strict      *bool           `json:"strict,omitempty"`
		}
		b, err := translate.Marshal(struct {
			Type       string `json:"type"`
			JSONSchema js     `json:"json_schema"`
		}{"json_schema", js{f.Name, f.Description, schema, f.Strict}})
		if err != nil {
			return translate.Invalid("text.format", "the json_schema format cannot be encoded")
		}
		r.format = b
	default:
		return translate.Invalid("text.format.type", `text.format.type must be "text", "json_object" or "json_schema"`)
	}
	return nil
}

func (r *Request) buildMessages() ([]translate.ChatMessage, error) {
	var out []translate.ChatMessage
	if r.w.Instructions != nil && *r.w.Instructions != "" {
		out = append(out, translate.ChatMessage{Role: "system", Content: translate.Content{Text: *r.w.Instructions}})
	}
	in := r.w.Input
	switch {
	case !present(in):
		return nil, translate.Invalid("input", `"input" is required`)
	case in[0] == '"':
		var s string
		if err := json.Unmarshal(in, &s); err != nil {
			return nil, translate.Invalid("input", `"input" must be a string or an array of input items`)
		}
		return append(out, translate.ChatMessage{Role: "user", Content: translate.Content{Text: s}}), nil
	case in[0] != '[':
		return nil, translate.Invalid("input", `"input" must be a string or an array of input items`)
	}
	var items []wireItem
	if err := json.Unmarshal(in, &items); err != nil {
		return nil, translate.Invalid("input", `"input" must be a string or an array of input items`)
	}
	if len(items) == 0 {
		return nil, translate.Invalid("input", `"input" must not be empty`)
	}
	for i := range items {
		it := &items[i]
		p := fmt.Sprintf("input[%d]", i)
		var err error
		switch it.Type {
		case "", "message":
			out, err = r.message(out, it, p)
		case "function_call":
			if it.CallID == "" || it.Name == "" {
				return nil, translate.Invalid(p, "a function_call item needs a call_id and a name")
			}
			args := "{}"
			if it.Arguments != nil && *it.Arguments != "" {
				args = *it.Arguments
			}
			call := translate.ToolCall{ID: it.CallID, Type: "function", Function: translate.CallFunction{Name: it.Name, Arguments: args}}
			// Calls that follow an assistant message belong to it: Chat
			// Completions carries them on the assistant message.
			if n := len(out); n > 0 && out[n-1].Role == "assistant" {
				if len(out[n-1].ToolCalls) == 0 && out[n-1].Content.Text == "" && out[n-1].Content.Parts == nil {
					out[n-1].Content.Null = true
				}
				out[n-1].ToolCalls = append(out[n-1].ToolCalls, call)
			} else {
				out = append(out, translate.ChatMessage{Role: "assistant", Content: translate.Content{Null: true}, ToolCalls: []translate.ToolCall{call}})
			}
			r.UsesTools = true
		case "function_call_output":
			if it.CallID == "" {
				return nil, translate.Invalid(p+".call_id", "a function_call_output item needs the call_id it answers")
			}
			text, err := outputText(it.Output, p+".output")
			if err != nil {
				return nil, err
			}
			out = append(out, translate.ChatMessage{Role: "tool", ToolCallID: it.CallID, Content: translate.Content{Text: text}})
			r.UsesTools = true
		case "reasoning":
			// Earlier reasoning cannot be given back to an engine.
		case "item_reference":
			return nil, translate.Unsupported(p, "item_reference is not supported: FLM does not store items; send the item itself")
		default:
			return nil, translate.Unsupported(p+".type", "input items of type %s cannot be translated", translate.Quote(it.Type))
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *Request) message(out []translate.ChatMessage, it *wireItem, p string) ([]translate.ChatMessage, error) {
	role := it.Role
	switch role {
	case "user", "assistant", "system":
	case "developer":
		role = "system"
	case "":
		return nil, translate.Invalid(p+".role", "every message needs a role")
	default:
		return nil, translate.Invalid(p+".role", `a message's role must be "user", "assistant", "system" or "developer"`)
	}
	c := it.Content
	switch {
	case !present(c):
		return nil, translate.Invalid(p+".content", "every message needs content")
	case c[0] == '"':
		var s string
		if err := json.Unmarshal(c, &s); err != nil {
			return nil, translate.Invalid(p+".content", "content must be a string or an array of content parts")
		}
		return append(out, translate.ChatMessage{Role: role, Content: translate.Content{Text: s}}), nil
	case c[0] != '[':
		return nil, translate.Invalid(p+".content", "content must be a string or an array of content parts")
	}
	var parts []wirePart
	if err := json.Unmarshal(c, &parts); err != nil {
		return nil, translate.Invalid(p+".content", "content must be a string or an array of content parts")
	}
	var cp []translate.Part
	images := false
	for j, part := range parts {
		pp := fmt.Sprintf("%s.content[%d]", p, j)
		switch part.Type {
		case "input_text", "output_text", "text":
			cp = append(cp, translate.TextPart(part.Text))
		case "refusal":
			cp = append(cp, translate.TextPart(part.Refusal))
		case "input_image":
			if role != "user" {
				return nil, translate.Unsupported(pp, "images can only be translated in user messages")
			}
			if part.ImageURL == nil || *part.ImageURL == "" {
				return nil, translate.Unsupported(pp, "images by file_id are not supported (FLM stores no files); send image_url")
			}
			u := *part.ImageURL
			if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "data:image/") {
				return nil, translate.Invalid(pp+".image_url", "image_url must be an http(s) or data:image/ URL")
			}
			cp = append(cp, translate.ImagePart(u))
			images = true
		default:
			return nil, translate.Unsupported(pp+".type", "content parts of type %s cannot be translated", translate.Quote(part.Type))
		}
	}
	msg := translate.ChatMessage{Role: role}
	if images {
		r.UsesImages = true
		msg.Content.Parts = cp
	} else {
		texts := make([]string, len(cp))
		for i, x := range cp {
			texts[i] = x.Text
		}
		msg.Content.Text = strings.Join(texts, "\n")
	}
	return append(out, msg), nil
}

// outputText is a function_call_output's output: a string or text parts.
func outputText(raw json.RawMessage, p string) (string, error) {
	if !present(raw) {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []wirePart
	if json.Unmarshal(raw, &parts) != nil {
		return "", translate.Invalid(p, "output must be a string or an array of content parts")
	}
	texts := make([]string, 0, len(parts))
	for j, part := range parts {
		if part.Type != "input_text" && part.Type != "output_text" {
			return "", translate.Unsupported(fmt.Sprintf("%s[%d]", p, j), "function outputs of type %s cannot be translated: tool messages carry text only", translate.Quote(part.Type))
		}
		texts = append(texts, part.Text)
	}
	return strings.Join(texts, "\n"), nil
}

// ChatRequest builds the engine's Chat Completions request.
func (r *Request) ChatRequest(t translate.Target) (*translate.ChatRequest, error) {
	if r.UsesTools && !t.Caps.Tools {
		return nil, translate.Unsupported("tools", "the model %s does not support tools", translate.Quote(r.Model))
	}
	if r.UsesImages && !t.Caps.Vision {
		return nil, translate.Unsupported("input", "the model %s does not take images", translate.Quote(r.Model))
	}
	w := &r.w
	c := &translate.ChatRequest{
		Model:             t.Model,
		Messages:          r.messages,
		MaxTokens:         w.MaxOutputTokens,
		Temperature:       w.Temperature,
		TopP:              w.TopP,
		Stream:            r.Stream,
		Tools:             r.tools,
		ParallelToolCalls: w.ParallelToolCalls,
		ResponseFormat:    r.format,
	}
	if len(r.tools) > 0 {
		c.ToolChoice = r.choice
	} else {
		c.ParallelToolCalls = nil
	}
	if r.Stream {
		c.StreamOptions = translate.WithUsage()
	}
	return c, nil
}

// ChatBody is ChatRequest encoded.
func (r *Request) ChatBody(t translate.Target) ([]byte, error) {
	c, err := r.ChatRequest(t)
	if err != nil {
		return nil, err
	}
	return translate.Marshal(c)
}
