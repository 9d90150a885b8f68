package ollamaapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/translate"
)

// APIVersion is the Ollama API version whose shapes the facade reproduces
// (captured from Ollama 0.33). Ollama clients gate features on
// /api/version; FLM's own version would look like an ancient Ollama.
const APIVersion = "0.33.0"

func appendHead(dst []byte, model string, at time.Time) []byte {
	dst = append(dst, `{"model":`...)
	dst = translate.AppendString(dst, model)
	dst = append(dst, `,"created_at":`...)
	dst = translate.AppendString(dst, at.UTC().Format(time.RFC3339Nano))
	return dst
}

// metrics are the numbers of a final line.
type metrics struct {
	total            time.Duration
	promptEval, eval time.Duration // 0: unknown, left out
	usage            *translate.Usage
}

func (m *metrics) fromTimings(t *translate.Timings) {
	if t == nil {
		return
	}
	if t.PromptMS > 0 {
		m.promptEval = time.Duration(t.PromptMS * float64(time.Millisecond))
	}
	if t.PredictedMS > 0 {
		m.eval = time.Duration(t.PredictedMS * float64(time.Millisecond))
	}
}

func appendMetrics(dst []byte, m *metrics) []byte {
	dst = append(dst, `,"total_duration":`...)
	dst = translate.AppendInt(dst, int64(max(m.total, 0)))
	if m.usage != nil {
		dst = append(dst, `,"prompt_eval_count":`...)
		dst = translate.AppendInt(dst, m.usage.PromptTokens)
	}
	if m.promptEval > 0 {
		dst = append(dst, `,"prompt_eval_duration":`...)
		dst = translate.AppendInt(dst, int64(m.promptEval))
	}
	if m.usage != nil {
		dst = append(dst, `,"eval_count":`...)
		dst = translate.AppendInt(dst, m.usage.CompletionTokens)
	}
	if m.eval > 0 {
		dst = append(dst, `,"eval_duration":`...)
		dst = translate.AppendInt(dst, int64(m.eval))
	}
	return dst
}

// doneReason maps finish_reason to Ollama's done_reason.
func doneReason(finish string) string {
	if finish == "length" {
		return "length"
	}
	return "stop" // Ollama says stop after tool calls too
}

func appendDone(dst []byte, finish string, m *metrics) []byte {
	dst = append(dst, `,"done":true,"done_reason":`...)
	dst = translate.AppendString(dst, doneReason(finish))
	dst = appendMetrics(dst, m)
	return append(dst, '}')
}

// call is a complete tool call.
type call struct {
	id, name string
	args     []byte
}

// appendToolCalls writes Ollama's tool_calls: arguments are objects.
func appendToolCalls(dst []byte, calls []call) ([]byte, error) {
	dst = append(dst, `,"tool_calls":[`...)
	for i, c := range calls {
		if c.name == "" {
			return dst, translate.EngineError("the engine sent a tool call without a function name")
		}
		args := []byte("{}")
		if len(c.args) > 0 {
			var ok bool
			if args, ok = translate.CompactObject(c.args); !ok {
				return dst, translate.EngineError("the engine called the tool %s with arguments that are not a JSON object", translate.Quote(c.name))
			}
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = translate.AppendString(dst, c.id)
		dst = append(dst, `,"function":{"index":`...)
		dst = translate.AppendInt(dst, int64(i))
		dst = append(dst, `,"name":`...)
		dst = translate.AppendString(dst, c.name)
		dst = append(dst, `,"arguments":`...)
		dst = append(dst, args...)
		dst = append(dst, "}}"...)
	}
	return append(dst, ']'), nil
}

func appendMessage(dst []byte, content, thinking string, calls []call) ([]byte, error) {
	dst = append(dst, `,"message":{"role":"assistant","content":`...)
	dst = translate.AppendString(dst, content)
	if thinking != "" {
		dst = append(dst, `,"thinking":`...)
		dst = translate.AppendString(dst, thinking)
	}
	var err error
	if len(calls) > 0 {
		if dst, err = appendToolCalls(dst, calls); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// Response turns the engine's non-streamed chat answer into /api/chat's.
// start is when FLM received the request.
func (r *ChatRequest) Response(body []byte, env translate.Env, start time.Time) ([]byte, error) {
	resp, err := translate.DecodeResponse(body)
	if err != nil {
		return nil, err
	}
	ch := &resp.Choices[0]
	now := env.Time()
	m := metrics{total: now.Sub(start), usage: translate.RealUsage(resp.Usage)}
	m.fromTimings(resp.Timings)
	content := ""
	if ch.Message.Content != nil {
		content = *ch.Message.Content
	}
	thinking := ""
	if !r.NoThinking {
		thinking = ch.Message.Thinking()
	}
	calls := make([]call, 0, len(ch.Message.ToolCalls))
	for _, tc := range ch.Message.ToolCalls {
		id := tc.ID
		if id == "" {
			id = env.ID("call_")
		}
		calls = append(calls, call{id, tc.Function.Name, []byte(tc.Function.Arguments)})
	}
	dst := appendHead(make([]byte, 0, 256+len(body)), r.Model, now)
	if dst, err = appendMessage(dst, content, thinking, calls); err != nil {
		return nil, err
	}
	return appendDone(dst, ch.FinishReason, &m), nil
}

// LoadResponse answers the "load the model" call (no messages).
func (r *ChatRequest) LoadResponse(env translate.Env) []byte {
	dst := appendHead(nil, r.Model, env.Time())
	return append(dst, `,"message":{"role":"assistant","content":""},"done_reason":"load","done":true}`...)
}

// Response turns the engine's non-streamed answer (chat or completions,
// per Path) into /api/generate's.
func (r *GenerateRequest) Response(body []byte, env translate.Env, start time.Time) ([]byte, error) {
	resp, err := translate.DecodeResponse(body)
	if err != nil {
		return nil, err
	}
	ch := &resp.Choices[0]
	now := env.Time()
	m := metrics{total: now.Sub(start), usage: translate.RealUsage(resp.Usage)}
	m.fromTimings(resp.Timings)
	text := ch.Text
	if !r.Raw && ch.Message.Content != nil {
		text = *ch.Message.Content
	}
	dst := appendHead(make([]byte, 0, 256+len(body)), r.Model, now)
	dst = append(dst, `,"response":`...)
	dst = translate.AppendString(dst, text)
	if th := ch.Message.Thinking(); th != "" && !r.NoThinking {
		dst = append(dst, `,"thinking":`...)
		dst = translate.AppendString(dst, th)
	}
	return appendDone(dst, ch.FinishReason, &m), nil
}

// LoadResponse answers the "load the model" call (empty prompt).
func (r *GenerateRequest) LoadResponse(env translate.Env) []byte {
	dst := appendHead(nil, r.Model, env.Time())
	return append(dst, `,"response":"","done":true,"done_reason":"load"}`...)
}

// Response turns the engine's /v1/embeddings answer into /api/embed's
// (or /api/embeddings').
func (r *EmbedRequest) Response(body []byte, env translate.Env, start time.Time) ([]byte, error) {
	var resp struct {
		Data []struct {
			Index     int             `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
		Usage *translate.Usage `json:"usage"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.Data) == 0 {
		return nil, translate.EngineError("the engine's answer is not a valid embeddings response")
	}
	slices.SortStableFunc(resp.Data, func(a, b struct {
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	}) int {
		return a.Index - b.Index
	})
	for _, d := range resp.Data {
		if len(d.Embedding) == 0 || d.Embedding[0] != '[' {
			return nil, translate.EngineError("the engine's embeddings are not arrays of numbers")
		}
	}
	dst := make([]byte, 0, len(body)+64)
	if r.Legacy {
		dst = append(dst, `{"embedding":`...)
		dst = append(dst, resp.Data[0].Embedding...)
		return append(dst, '}'), nil
	}
	dst = append(dst, `{"model":`...)
	dst = translate.AppendString(dst, r.Model)
	dst = append(dst, `,"embeddings":[`...)
	for i, d := range resp.Data {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, d.Embedding...)
	}
	dst = append(dst, `],"total_duration":`...)
	dst = translate.AppendInt(dst, int64(max(env.Time().Sub(start), 0)))
	if u := translate.RealUsage(resp.Usage); u != nil {
		dst = append(dst, `,"prompt_eval_count":`...)
		dst = translate.AppendInt(dst, u.PromptTokens)
	}
	return append(dst, '}'), nil
}

// LoadResponse answers an embed call with nothing to embed.
func (r *EmbedRequest) LoadResponse() []byte {
	if r.Legacy {
		return []byte(`{"embedding":[]}`)
	}
	dst := append([]byte(`{"model":`), translate.AppendString(nil, r.Model)...)
	return append(dst, `,"embeddings":[]}`...)
}

// ---- catalog ----

// zeroTime is Go's zero time.Time as Ollama's own Go types encode an
// unknown time.
const zeroTime = "0001-01-01T00:00:00Z"

// Name is the name a model is listed under: its bare name when no other
// model of the catalog has it (it then routes by name), else its flm://
// id. "x" and "x:latest" count as the same name: an engine with Ollama's
// implicit tag serves "x:latest" as "x" too, so FLM routes a bare "x" to
// either and it would be ambiguous.
func Name(m engine.Model, catalog []engine.Model) string {
	base := strings.TrimSuffix(m.Name, ":latest")
	n := 0
	for _, c := range catalog {
		if strings.TrimSuffix(c.Name, ":latest") == base {
			n++
		}
	}
	if n == 1 {
		return m.Name
	}
	return m.ID
}

func capabilities(c engine.Capabilities) []string {
	out := []string{}
	if c.Chat || c.Completions {
		out = append(out, "completion")
	}
	if c.Tools {
		out = append(out, "tools")
	}
	if c.Vision {
		out = append(out, "vision")
	}
	if c.Embeddings {
		out = append(out, "embedding")
	}
	return out
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = translate.AppendString(dst, s)
	}
	return append(dst, ']')
}

const details = `{"parent_model":"","format":"","family":"","families":[],"parameter_size":"","quantization_level":""}`

// Tags is the /api/tags answer for the models a key may see (visible);
// catalog is every model FLM routes to, which decides whether a bare name
// is unambiguous.
func Tags(visible, catalog []engine.Model) []byte {
	if catalog == nil {
		catalog = visible
	}
	dst := []byte(`{"models":[`)
	for i, m := range visible {
		if i > 0 {
			dst = append(dst, ',')
		}
		name := Name(m, catalog)
		sum := sha256.Sum256([]byte(m.ID))
		dst = append(dst, `{"name":`...)
		dst = translate.AppendString(dst, name)
		dst = append(dst, `,"model":`...)
		dst = translate.AppendString(dst, name)
		dst = append(dst, `,"modified_at":"`+zeroTime+`","size":0,"digest":"`...)
		dst = hex.AppendEncode(dst, sum[:])
		dst = append(dst, `","details":`+details+`,"capabilities":`...)
		dst = appendStrings(dst, capabilities(m.Capabilities))
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// Show is the /api/show answer for a model. FLM knows no Modelfile,
// template or tensors; model_info carries the context length where FLM
// knows it, under "flm.context_length" with general.architecture "flm", so
// clients that read "<architecture>.context_length" find it.
func Show(m engine.Model) []byte {
	dst := []byte(`{"modelfile":"","parameters":"","template":"","details":` + details + `,"model_info":{`)
	if m.ContextLength != nil {
		dst = append(dst, `"general.architecture":"flm","flm.context_length":`...)
		dst = translate.AppendInt(dst, int64(*m.ContextLength))
	}
	dst = append(dst, `},"tensors":[],"capabilities":`...)
	dst = appendStrings(dst, capabilities(m.Capabilities))
	return append(dst, `,"modified_at":"`+zeroTime+`"}`...)
}

// Version is the /api/version answer.
func Version(v string) []byte {
	return append(append([]byte(`{"version":`), translate.AppendString(nil, v)...), '}')
}

// ErrorBody is an error in Ollama's shape, {"error":"…"}; the HTTP status
// carries the rest.
func ErrorBody(message string) []byte {
	return append(append([]byte(`{"error":`), translate.AppendString(nil, message)...), '}')
}

// ModelNotFound is an unknown model in Ollama's own wording ("model 'x'
// not found"), which Ollama clients show and match on.
func ModelNotFound(name string) *translate.Error {
	if len(name) > 80 {
		name = name[:80] + "…"
	}
	return &translate.Error{Status: http.StatusNotFound, Code: "model_not_found", Message: "model '" + strings.ToValidUTF8(name, "\uFFFD") + "' not found"}
}
