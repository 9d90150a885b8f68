package enginefake

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
)

// vLLM's OpenAI server (FastAPI on uvicorn): fixtures/vllm, transcribed from
// vLLM's source since it cannot run here. Headers are uvicorn's (date,
// server: uvicorn); errors are the nested envelope of vLLM >= 0.10.
// /v1/completions and /v1/embeddings and the FastAPI 404/405 bodies have no
// fixture: they are DERIVED from vLLM's protocol (completion/protocol.py,
// pooling/embed/protocol.py and the serving code's model_dump calls, vLLM
// main 2026) following the chat fixtures' conventions, and say so below.

const (
	vllmCapturedModel = "Qwen/Qwen2.5-1.5B-Instruct"
	vllmCapturedCtx   = 32768
)

var vllmCaptured = []Model{{Name: vllmCapturedModel, ContextLength: vllmCapturedCtx}}

// vllmRoutes: path → allowed methods.
var vllmRoutes = map[string]string{
	"/health":              "GET",
	"/ping":                "GET, POST",
	"/version":             "GET",
	"/metrics":             "GET",
	"/v1/models":           "GET",
	"/v1/chat/completions": "POST",
	"/v1/completions":      "POST",
	"/v1/embeddings":       "POST",
}

type vllm struct {
	opts   Options
	models []Model
}

func newVLLM(opts Options) (engine, error) {
	v := &vllm{opts: opts, models: vllmCaptured}
	if opts.Models != nil {
		if len(opts.Models) == 0 {
			return nil, fmt.Errorf("enginefake: vLLM always serves a model; Models is empty")
		}
		v.models = opts.Models
	}
	return v, nil
}

func vfx(name string) *Fixture { return mustFixture("vllm/" + name) }

// legacy reports a Version before 0.10, whose errors were a flat
// {"object":"error","message",...} (error_unknown_model_legacy_pre_0.10).
func (v *vllm) legacy() bool {
	var major, minor int
	if _, err := fmt.Sscanf(strings.TrimPrefix(v.opts.Version, "v"), "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major == 0 && minor < 10
}

// errorReply answers a nested error envelope, flattened for legacy versions.
func (v *vllm) errorReply(c *call, fx *Fixture, n *jnode) {
	if v.legacy() {
		flat := obj("object", "error")
		e := n.get("error")
		for i, k := range e.keys {
			flat.set(k, e.vals[i])
		}
		n = flat
	}
	c.replyNode(fx, 0, n)
}

func (v *vllm) fail500(c *call) {
	fx := vfx("error_unknown_model.http")
	c.replyNode(fx, http.StatusInternalServerError, mustJSON([]byte(
		`{"error":{"message":"fake engine: injected failure","type":"InternalServerError","param":null,"code":500}}`)))
}

// derived answers a JSON body that has no fixture, with uvicorn's headers
// as in version.http.
func (v *vllm) derived(c *call, status int, n *jnode) { c.replyNode(vfx("version.http"), status, n) }

func (v *vllm) serve(c *call) {
	p := c.r.URL.Path
	if c.failure == FailLoading && p != "/version" && p != "/v1/models" {
		// vLLM does not listen before its model is up; once its engine
		// process died, /health is this empty 503 while the API server's
		// static routes (/version, /v1/models) still answer. Inference
		// routes fail the same way here.
		c.replay(vfx("health_engine_dead.http"))
		return
	}
	// AuthenticationMiddleware guards the /v1 routes only.
	if v.opts.APIKey != "" && strings.HasPrefix(p, "/v1") && c.r.Method != http.MethodOptions &&
		c.r.Header.Get("Authorization") != "Bearer "+v.opts.APIKey {
		c.replay(vfx("error_unauthorized.http"))
		return
	}
	allowed, ok := vllmRoutes[p]
	switch p { // vLLM attaches routes per task: generate or embed
	case "/v1/embeddings":
		ok = ok && v.has(true)
	case "/v1/chat/completions", "/v1/completions":
		ok = ok && v.has(false)
	}
	if !ok {
		v.derived(c, http.StatusNotFound, obj("detail", "Not Found")) // DERIVED: Starlette's 404
		return
	}
	if !methodIn(c.r.Method, allowed) && !(c.r.Method == http.MethodHead && methodIn("GET", allowed)) {
		c.header = http.Header{"Allow": {allowed}}
		v.derived(c, http.StatusMethodNotAllowed, obj("detail", "Method Not Allowed")) // DERIVED: Starlette's 405
		return
	}
	switch p {
	case "/health":
		c.replay(vfx("health_ok.http"))
	case "/ping":
		c.replay(vfx("ping.http"))
	case "/version":
		n := bodyNode(vfx("version.http"))
		if v.opts.Version != "" {
			n.set("version", v.opts.Version)
		}
		c.replyNode(vfx("version.http"), 0, n)
	case "/metrics":
		fx := vfx("metrics.txt.http")
		label := fmt.Sprintf("model_name=%q", v.models[0].Name)
		c.reply(fx, 0, bytes.ReplaceAll(fx.Response.Body, []byte(`model_name="`+vllmCapturedModel+`"`), []byte(label)))
	case "/v1/models":
		v.listModels(c)
	case "/v1/chat/completions", "/v1/completions", "/v1/embeddings":
		v.inference(c, p)
	}
}

// has reports whether some served model is (not) an embedding model.
func (v *vllm) has(embedding bool) bool {
	for _, m := range v.models {
		if m.Embedding == embedding {
			return true
		}
	}
	return false
}

func (v *vllm) listModels(c *call) {
	fx := vfx("v1_models.http")
	n := bodyNode(fx)
	tpl := n.get("data", 0)
	var cards []*jnode
	for _, m := range v.models {
		card := tpl.clone()
		card.set("id", m.Name)
		card.set("root", pick(m.Root != "", m.Root, m.Name))
		if m.Parent != "" { // a LoRA adapter (v1_models_served_name_and_lora)
			card.set("parent", m.Parent)
			card.set("max_model_len", nil)
		} else {
			card.set("max_model_len", ctxOr(m, vllmCapturedCtx))
		}
		cards = append(cards, card)
	}
	n.set("data", arr(cards...))
	c.replyNode(fx, 0, n)
}

func (v *vllm) inference(c *call, p string) {
	req, err := parseJSON(c.body)
	if err != nil || req.kind != '{' {
		fx := vfx("error_malformed_json.http") // message as captured (pydantic's text varies)
		v.errorReply(c, fx, bodyNode(fx))
		return
	}
	// A missing model means the (first) served model.
	m, name := v.models[0], stringField(req, "model")
	if name != "" {
		found := false
		for _, mm := range v.models {
			if mm.Name == name {
				m, found = mm, true
			}
		}
		if !found {
			msg := fmt.Sprintf("The model `%s` does not exist.", name)
			if v.legacy() {
				fx := vfx("error_unknown_model_legacy_pre_0.10.http")
				c.replyNode(fx, 0, bodyNode(fx).set("message", msg))
				return
			}
			fx := vfx("error_unknown_model.http")
			n := bodyNode(fx)
			n.get("error").set("message", msg)
			c.replyNode(fx, 0, n)
			return
		}
	}
	required := map[string]string{"/v1/chat/completions": "messages", "/v1/completions": "prompt", "/v1/embeddings": "input"}[p]
	if !req.has(required) {
		// DERIVED: pydantic's missing-field error through the same
		// validation handler as error_malformed_json.
		fx := vfx("error_malformed_json.http")
		n := bodyNode(fx)
		n.get("error").set("message", fmt.Sprintf("1 validation error:\n  {'type': 'missing', 'loc': ('body', '%s'), 'msg': 'Field required'}", required))
		v.errorReply(c, fx, n)
		return
	}
	stream, usage := boolField(req, "stream", false), includeUsage(req)
	switch p {
	case "/v1/chat/completions":
		if stream {
			fx := vfx("v1_chat_completions_stream.http")
			var events []*jnode
			for _, e := range sseNodes(fx) {
				if e != nil && len(e.get("choices").vals) == 0 && !usage {
					continue // the usage chunk only comes with include_usage
				}
				e.setIfPresent("model", m.Name)
				events = append(events, e)
			}
			c.stream(fx, eventBytes(events), sse)
			return
		}
		fx := vfx("v1_chat_completions.http")
		c.replyNode(fx, 0, bodyNode(fx).set("model", m.Name))
	case "/v1/completions":
		if stream {
			c.stream(vfx("v1_chat_completions_stream.http"), v.completionEvents(m.Name, usage), sse)
			return
		}
		v.derived(c, http.StatusOK, v.completion(m.Name))
	case "/v1/embeddings":
		v.derived(c, http.StatusOK, v.embeddings(m.Name, req))
	}
}

// completion is DERIVED: CompletionResponse.model_dump() (every field, None
// as null), with the text, usage and timestamps of the chat fixture.
func (v *vllm) completion(model string) *jnode {
	chat := bodyNode(vfx("v1_chat_completions.http"))
	choice := chat.get("choices", 0)
	return obj(
		"id", "cmpl-"+strings.TrimPrefix(chat.get("id").str(), "chatcmpl-"),
		"object", "text_completion",
		"created", chat.get("created"),
		"model", model,
		"choices", arr(obj(
			"index", 0,
			"text", choice.get("message", "content"),
			"logprobs", nil,
			"finish_reason", choice.get("finish_reason"),
			"stop_reason", nil,
			"token_ids", nil,
			"prompt_logprobs", nil,
			"prompt_token_ids", nil,
		)),
		"service_tier", nil,
		"system_fingerprint", nil,
		"usage", chat.get("usage"),
		"kv_transfer_params", nil,
	)
}

// completionEvents is DERIVED: the chat stream's chunks as
// CompletionStreamResponse.model_dump_json(exclude_unset=False) (so
// "usage": null on each), no role chunk, and with include_usage a final
// chunk dumped with exclude_none (choices [], usage without details).
func (v *vllm) completionEvents(model string, usage bool) [][]byte {
	var out []*jnode
	for _, e := range sseNodes(vfx("v1_chat_completions_stream.http")) {
		if e == nil {
			out = append(out, nil)
			continue
		}
		id := "cmpl-" + strings.TrimPrefix(e.get("id").str(), "chatcmpl-")
		if len(e.get("choices").vals) == 0 {
			if usage {
				out = append(out, obj("id", id, "object", "text_completion", "created", e.get("created"),
					"model", model, "choices", arr(), "usage", e.get("usage")))
			}
			continue
		}
		ch := e.get("choices", 0)
		if ch.get("delta").has("role") {
			continue
		}
		out = append(out, obj("id", id, "object", "text_completion", "created", e.get("created"), "model", model,
			"choices", arr(obj(
				"index", 0,
				"text", ch.get("delta", "content"),
				"logprobs", nil,
				"finish_reason", ch.get("finish_reason"),
				"stop_reason", nil,
				"prompt_token_ids", nil,
				"token_ids", nil,
			)),
			"usage", nil))
	}
	return eventBytes(out)
}

// embeddings is DERIVED: EmbeddingResponse.model_dump() — id "embd-...",
// object, created, model, data[{index, object, embedding}], usage with
// completion_tokens 0. The vectors are llama.cpp's captured ones (a number
// is a number); base64 as the captured llama.cpp base64.
func (v *vllm) embeddings(model string, req *jnode) *jnode {
	chat := bodyNode(vfx("v1_chat_completions.http"))
	src := bodyNode(lfx("embeddings_mode/v1_embeddings_batch.http"))
	vectors := src.get("data").vals
	if stringField(req, "encoding_format") == "base64" {
		vectors = bodyNode(lfx("embeddings_mode/v1_embeddings_base64.http")).get("data").vals
	}
	count := inputCount(req.get("input"))
	if count < 0 {
		count = 1
	}
	var data []*jnode
	for i, d := range cycle(vectors, count) {
		data = append(data, obj("index", i, "object", "embedding", "embedding", d.get("embedding")))
	}
	tokens := 7 * count
	return obj(
		"id", "embd-"+strings.TrimPrefix(chat.get("id").str(), "chatcmpl-"),
		"object", "list",
		"created", chat.get("created"),
		"model", model,
		"data", arr(data...),
		"usage", obj("prompt_tokens", tokens, "total_tokens", tokens, "completion_tokens", 0, "prompt_tokens_details", nil),
	)
}
