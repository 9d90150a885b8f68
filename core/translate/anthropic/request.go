package anthropic

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/unjuno/flm/core/translate"
)

// wireRequest is the part of a Messages request FLM reads. Polymorphic
// fields stay raw until their shape is checked.
type wireRequest struct {
	Model         string          `json:"model"`
	MaxTokens     *int64          `json:"max_tokens"`
	Messages      []wireMessage   `json:"messages"`
	System        json.RawMessage `json:"system"`
	StopSequences []string        `json:"stop_sequences"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	TopK          *int64          `json:"top_k"`
	Stream        *bool           `json:"stream"`
	Tools         []wireTool      `json:"tools"`
	ToolChoice    *wireToolChoice `json:"tool_choice"`
	Thinking      *struct {
		Type string `json:"type"`
	} `json:"thinking"`
	MCPServers json.RawMessage `json:"mcp_servers"`
	Container  json.RawMessage `json:"container"`
}

type wireMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type wireBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	Source    *wireSource     `json:"source"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	IsError   bool            `json:"is_error"`
}

type wireSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type"`
	Data      string `json:"data"`
	URL       string `json:"url"`
}

type wireTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type wireToolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
}

// Request is a parsed, validated Messages request.
type Request struct {
	// Model is the model as the client named it (an flm:// id or a bare
	// name); answers echo it.
	Model  string
	Stream bool
	// Thinking: the client enabled extended thinking, so the engine's
	// reasoning is returned as thinking blocks.
	Thinking bool
	// UsesTools: the request declares tools or its history holds tool
	// calls; the model must support tools.
	UsesTools bool
	// UsesImages: the history holds images; the model must support vision.
	UsesImages bool

	w        wireRequest
	messages []translate.ChatMessage // built once by ParseRequest
}

// ParseRequest validates a POST /v1/messages body. Everything that can be
// checked without knowing the engine is checked here, so a bad request is
// refused before a model is resolved.
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
	if w.MaxTokens != nil && *w.MaxTokens < 1 {
		return nil, translate.Invalid("max_tokens", `"max_tokens" must be at least 1`)
	}
	if len(w.Messages) == 0 {
		return nil, translate.Invalid("messages", `"messages" must be a non-empty array`)
	}
	if w.Stream != nil {
		r.Stream = *w.Stream
	}
	if w.Thinking != nil && (w.Thinking.Type == "enabled" || w.Thinking.Type == "adaptive") {
		r.Thinking = true
	}
	if len(w.MCPServers) > 0 && string(w.MCPServers) != "null" && string(w.MCPServers) != "[]" {
		return nil, translate.Unsupported("mcp_servers", "MCP servers are run by Anthropic's platform; FLM cannot connect engines to them")
	}
	if len(w.Container) > 0 && string(w.Container) != "null" {
		return nil, translate.Unsupported("container", "containers are part of Anthropic's platform and cannot be translated")
	}
	for i, s := range w.StopSequences {
		if s == "" {
			return nil, translate.Invalid(fmt.Sprintf("stop_sequences[%d]", i), "stop sequences must not be empty")
		}
	}
	if err := r.checkTools(); err != nil {
		return nil, err
	}
	var err error
	if r.messages, err = r.buildMessages(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Request) checkTools() error {
	for i, t := range r.w.Tools {
		p := fmt.Sprintf("tools[%d]", i)
		if t.Type != "" && t.Type != "custom" {
			return translate.Unsupported(p+".type", "the tool type %s is one of Anthropic's own tools, which engines do not have; declare it as a custom tool with an input_schema", translate.Quote(t.Type))
		}
		if t.Name == "" {
			return translate.Invalid(p+".name", "every tool needs a name")
		}
		if _, ok := translate.CompactObject(t.InputSchema); !ok {
			return translate.Invalid(p+".input_schema", "the tool %s needs an input_schema object", translate.Quote(t.Name))
		}
	}
	if len(r.w.Tools) > 0 {
		r.UsesTools = true
	}
	if tc := r.w.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto", "any", "none":
		case "tool":
			if tc.Name == "" {
				return translate.Invalid("tool_choice.name", `tool_choice of type "tool" needs a name`)
			}
		default:
			return translate.Invalid("tool_choice.type", `tool_choice.type must be "auto", "any", "tool" or "none"`)
		}
	}
	return nil
}

// blocksText returns a system prompt or tool result given as a string or
// as an array of text blocks. Chat Completions has images only in user
// messages, so image blocks here are refused.
func blocksText(raw json.RawMessage, param string) (string, error) {
	raw = trim(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", translate.Invalid(param, "%s must be a string or an array of text blocks", translate.Quote(param))
		}
		return s, nil
	}
	var blocks []wireBlock
	if raw[0] != '[' || json.Unmarshal(raw, &blocks) != nil {
		return "", translate.Invalid(param, "%s must be a string or an array of text blocks", translate.Quote(param))
	}
	var sb strings.Builder
	for j, b := range blocks {
		switch b.Type {
		case "text":
			if sb.Len() > 0 {
				sb.WriteByte('\n')
			}
			sb.WriteString(b.Text)
		case "image":
			return "", translate.Unsupported(fmt.Sprintf("%s[%d]", param, j), "images here cannot be translated: Chat Completions has images only in user messages")
		default:
			return "", translate.Unsupported(fmt.Sprintf("%s[%d]", param, j), "content blocks of type %s cannot be translated here", translate.Quote(b.Type))
		}
	}
	return sb.String(), nil
}

func trim(raw json.RawMessage) json.RawMessage {
	for len(raw) > 0 && (raw[0] == ' ' || raw[0] == '\n' || raw[0] == '\t' || raw[0] == '\r') {
		raw = raw[1:]
	}
	return raw
}

// buildMessages translates system and messages into Chat Completions
// messages. tool_result blocks become "tool" messages placed right after
// the assistant's calls, before the rest of the user's turn, as Chat
// Completions requires.
func (r *Request) buildMessages() ([]translate.ChatMessage, error) {
	out := make([]translate.ChatMessage, 0, len(r.w.Messages)+1)
	sys, err := blocksText(r.w.System, "system")
	if err != nil {
		return nil, err
	}
	if sys != "" {
		out = append(out, translate.ChatMessage{Role: "system", Content: translate.Content{Text: sys}})
	}
	for i, m := range r.w.Messages {
		p := fmt.Sprintf("messages[%d]", i)
		if m.Role != "user" && m.Role != "assistant" {
			return nil, translate.Invalid(p+".role", `each message's role must be "user" or "assistant" (the system prompt goes in "system")`)
		}
		content := trim(m.Content)
		switch {
		case len(content) == 0 || string(content) == "null":
			return nil, translate.Invalid(p+".content", "every message needs content")
		case content[0] == '"':
			var s string
			if err := json.Unmarshal(content, &s); err != nil {
				return nil, translate.Invalid(p+".content", "content must be a string or an array of content blocks")
			}
			out = append(out, translate.ChatMessage{Role: m.Role, Content: translate.Content{Text: s}})
			continue
		case content[0] != '[':
			return nil, translate.Invalid(p+".content", "content must be a string or an array of content blocks")
		}
		var blocks []wireBlock
		if err := json.Unmarshal(content, &blocks); err != nil {
			return nil, translate.Invalid(p+".content", "content must be a string or an array of content blocks")
		}
		if m.Role == "user" {
			out, err = r.userBlocks(out, blocks, p)
		} else {
			out, err = r.assistantBlocks(out, blocks, p)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *Request) userBlocks(out []translate.ChatMessage, blocks []wireBlock, p string) ([]translate.ChatMessage, error) {
	var parts []translate.Part
	images := false
	for j, b := range blocks {
		bp := fmt.Sprintf("%s.content[%d]", p, j)
		switch b.Type {
		case "text":
			parts = append(parts, translate.TextPart(b.Text))
		case "image":
			url, err := imageURL(b.Source, bp)
			if err != nil {
				return nil, err
			}
			parts = append(parts, translate.ImagePart(url))
			images = true
		case "tool_result":
			if b.ToolUseID == "" {
				return nil, translate.Invalid(bp+".tool_use_id", "a tool_result needs the tool_use_id it answers")
			}
			text, err := blocksText(b.Content, bp+".content")
			if err != nil {
				return nil, err
			}
			r.UsesTools = true
			out = append(out, translate.ChatMessage{Role: "tool", ToolCallID: b.ToolUseID, Content: translate.Content{Text: text}})
		default:
			return nil, unsupportedBlock(bp, b.Type)
		}
	}
	if len(parts) == 0 {
		return out, nil
	}
	msg := translate.ChatMessage{Role: "user"}
	if images {
		r.UsesImages = true
		msg.Content.Parts = parts
	} else {
		msg.Content.Text = joinText(parts)
	}
	return append(out, msg), nil
}

func (r *Request) assistantBlocks(out []translate.ChatMessage, blocks []wireBlock, p string) ([]translate.ChatMessage, error) {
	var texts []translate.Part
	var calls []translate.ToolCall
	for j, b := range blocks {
		bp := fmt.Sprintf("%s.content[%d]", p, j)
		switch b.Type {
		case "text":
			texts = append(texts, translate.TextPart(b.Text))
		case "tool_use":
			if b.ID == "" || b.Name == "" {
				return nil, translate.Invalid(bp, "a tool_use block needs an id and a name")
			}
			args, ok := translate.CompactObject(b.Input)
			if !ok {
				return nil, translate.Invalid(bp+".input", "a tool_use block's input must be an object")
			}
			calls = append(calls, translate.ToolCall{ID: b.ID, Type: "function", Function: translate.CallFunction{Name: b.Name, Arguments: string(args)}})
		case "thinking", "redacted_thinking":
			// The engine cannot verify signatures and has its own reasoning.
		default:
			return nil, unsupportedBlock(bp, b.Type)
		}
	}
	msg := translate.ChatMessage{Role: "assistant", ToolCalls: calls}
	if len(texts) > 0 {
		msg.Content.Text = joinText(texts)
	} else if len(calls) > 0 {
		msg.Content.Null = true
	} else {
		return out, nil // only thinking: nothing the engine can use
	}
	if len(calls) > 0 {
		r.UsesTools = true
	}
	return append(out, msg), nil
}

func unsupportedBlock(param, typ string) error {
	switch typ {
	case "document", "search_result":
		return translate.Unsupported(param, "content blocks of type %s cannot be translated: engines take text and images only", translate.Quote(typ))
	case "":
		return translate.Invalid(param+".type", "every content block needs a type")
	}
	return translate.Unsupported(param, "content blocks of type %s cannot be translated for this engine", translate.Quote(typ))
}

func joinText(parts []translate.Part) string {
	if len(parts) == 1 {
		return parts[0].Text
	}
	var sb strings.Builder
	for i, p := range parts {
		if i > 0 {
			sb.WriteByte('\n')
		}
		sb.WriteString(p.Text)
	}
	return sb.String()
}

var imageTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

func imageURL(s *wireSource, param string) (string, error) {
	if s == nil {
		return "", translate.Invalid(param+".source", "an image block needs a source")
	}
	switch s.Type {
	case "base64":
		if !imageTypes[s.MediaType] {
			return "", translate.Invalid(param+".source.media_type", "media_type must be image/jpeg, image/png, image/gif or image/webp")
		}
		if s.Data == "" {
			return "", translate.Invalid(param+".source.data", "the image data is empty")
		}
		return translate.DataURL(s.MediaType, s.Data), nil
	case "url":
		if !strings.HasPrefix(s.URL, "https://") && !strings.HasPrefix(s.URL, "http://") {
			return "", translate.Invalid(param+".source.url", "an image url must be an http(s) URL")
		}
		return s.URL, nil
	}
	return "", translate.Unsupported(param+".source.type", "image sources of type %s cannot be translated (use base64 or url)", translate.Quote(s.Type))
}

// ChatRequest builds the engine's Chat Completions request. It fails when
// the request needs a capability the model lacks.
func (r *Request) ChatRequest(t translate.Target) (*translate.ChatRequest, error) {
	if r.UsesTools && !t.Caps.Tools {
		return nil, translate.Unsupported("tools", "the model %s does not support tools", translate.Quote(r.Model))
	}
	if r.UsesImages && !t.Caps.Vision {
		return nil, translate.Unsupported("messages", "the model %s does not take images", translate.Quote(r.Model))
	}
	w := &r.w
	c := &translate.ChatRequest{
		Model:       t.Model,
		Messages:    r.messages,
		MaxTokens:   w.MaxTokens,
		Temperature: w.Temperature,
		TopP:        w.TopP,
		TopK:        w.TopK,
		Stop:        w.StopSequences,
		Stream:      r.Stream,
	}
	if r.Stream {
		c.StreamOptions = translate.WithUsage()
	}
	for _, tool := range w.Tools {
		schema, _ := translate.CompactObject(tool.InputSchema)
		c.Tools = append(c.Tools, translate.Tool{Type: "function", Function: translate.Function{Name: tool.Name, Description: tool.Description, Parameters: schema}})
	}
	if tc := w.ToolChoice; tc != nil && len(w.Tools) > 0 {
		switch tc.Type {
		case "auto":
			c.ToolChoice = translate.ToolChoiceAuto
		case "any":
			c.ToolChoice = translate.ToolChoiceRequired
		case "none":
			c.ToolChoice = translate.ToolChoiceNone
		case "tool":
			c.ToolChoice = translate.ToolChoiceFunction(tc.Name)
		}
		if tc.DisableParallelToolUse {
			f := false
			c.ParallelToolCalls = &f
		}
	}
	return c, nil
}

// ChatBody is ChatRequest encoded: the body to POST to the engine's
// /v1/chat/completions.
func (r *Request) ChatBody(t translate.Target) ([]byte, error) {
	c, err := r.ChatRequest(t)
	if err != nil {
		return nil, err
	}
	return translate.Marshal(c)
}
