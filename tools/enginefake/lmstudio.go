package enginefake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// LM Studio 0.3.x/0.4.x (fixtures/lmstudio): transcribed from its docs, CLI
// and user reports since it cannot run here; only Content-Type headers are
// known. Quirks replayed: unknown routes answer HTTP 200 with an "error"
// string; with exactly one model loaded the requested model name is ignored;
// JIT loading (a listed but unloaded model loads on first use).
//
// Not captured, and DERIVED below: /v1/completions (v0's body minus its v0
// extras, plus v1 chat's "stats": {} and system_fingerprint), completion
// streams (chat stream chunks with "text"), malformed-JSON errors, and the
// API-token error (body quoted from an LM Studio 0.4.18 server log in
// agustif/opencode-lmstudio#41).

const lmsTokenError = `{"error":{"type":"invalid_request","code":"invalid_api_key","message":"An LM Studio API token is required to make requests to this server, but none was provided using the Authorization header using the 'Bearer' scheme (i.e., 'Authorization: Bearer $LM_API_TOKEN'). Learn more at: https://lmstudio.ai/docs/developer/core/authentication."}}`

type lmsModel struct {
	Model
	tpl    int  // index of the captured /api/v0/models entry it is cloned from
	loaded bool // state "loaded"
}

type lmstudio struct {
	opts Options

	mu     sync.Mutex
	models []*lmsModel
}

func lsfx(name string) *Fixture { return mustFixture("lmstudio/" + name) }

func newLMStudio(opts Options) *lmstudio {
	l := &lmstudio{opts: opts}
	if opts.Models == nil {
		// The captured /api/v0/models: one loaded LLM, a VLM and an
		// embedding model, both not loaded.
		for i, e := range bodyNode(lsfx("api_v0_models.http")).get("data").vals {
			var ctx int
			_ = json.Unmarshal(e.get("max_context_length").raw, &ctx)
			l.models = append(l.models, &lmsModel{
				Model:  Model{Name: e.get("id").str(), Embedding: e.get("type").str() == "embeddings", ContextLength: ctx},
				tpl:    i,
				loaded: e.get("state").str() == "loaded",
			})
		}
		return l
	}
	for _, m := range opts.Models {
		// Given models are all loaded, cloned from the LLM or embedding entry.
		l.models = append(l.models, &lmsModel{Model: m, tpl: pick(m.Embedding, 2, 0), loaded: true})
	}
	return l
}

func (l *lmstudio) snapshot() []lmsModel {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]lmsModel, len(l.models))
	for i, m := range l.models {
		out[i] = *m
	}
	return out
}

func (l *lmstudio) fail500(c *call) {
	fx := lsfx("error_no_models_loaded.http")
	n := bodyNode(fx)
	n.get("error").set("message", "fake engine: injected failure")
	c.replyNode(fx, http.StatusInternalServerError, n)
}

func (l *lmstudio) unknownRoute(c *call) {
	fx := lsfx("error_unknown_route.http")
	msg := fmt.Sprintf("Unexpected endpoint or method. (%s %s)", c.r.Method, c.r.URL.Path)
	c.replyNode(fx, 0, bodyNode(fx).set("error", msg)) // HTTP 200
}

func (l *lmstudio) serve(c *call) {
	p, m := c.r.URL.Path, c.r.Method
	if l.opts.APIKey != "" && p != "/lmstudio-greeting" &&
		c.r.Header.Get("Authorization") != "Bearer "+l.opts.APIKey {
		c.reply(lsfx("error_unknown_model.http"), http.StatusUnauthorized, []byte(lmsTokenError))
		return
	}
	switch {
	case m == http.MethodGet && p == "/lmstudio-greeting":
		c.replay(lsfx("lmstudio_greeting.http"))
	case m == http.MethodGet && p == "/v1/models":
		l.v1Models(c)
	case m == http.MethodGet && p == "/api/v0/models":
		l.v0Models(c)
	case m == http.MethodGet && strings.HasPrefix(p, "/api/v0/models/"):
		l.v0Model(c, strings.TrimPrefix(p, "/api/v0/models/")) // ids may contain '/'
	case m == http.MethodPost && (p == "/v1/chat/completions" || p == "/api/v0/chat/completions"):
		l.inference(c, "chat", strings.HasPrefix(p, "/api/v0/"))
	case m == http.MethodPost && (p == "/v1/completions" || p == "/api/v0/completions"):
		l.inference(c, "completions", strings.HasPrefix(p, "/api/v0/"))
	case m == http.MethodPost && (p == "/v1/embeddings" || p == "/api/v0/embeddings"):
		l.inference(c, "embeddings", strings.HasPrefix(p, "/api/v0/"))
	default:
		l.unknownRoute(c)
	}
}

func (l *lmstudio) v1Models(c *call) {
	fx := lsfx("v1_models.http")
	n := bodyNode(fx)
	tpl := n.get("data", 0)
	var entries []*jnode
	for _, m := range l.snapshot() {
		entries = append(entries, tpl.clone().set("id", m.Name))
	}
	n.set("data", arr(entries...))
	c.replyNode(fx, 0, n)
}

// v0Entry clones the captured /api/v0/models entry of the model's sort.
func (l *lmstudio) v0Entry(m lmsModel) *jnode {
	tpls := bodyNode(lsfx("api_v0_models.http")).get("data")
	e := tpls.get(m.tpl)
	e.set("id", m.Name)
	if m.ContextLength > 0 {
		e.set("max_context_length", m.ContextLength)
	}
	if m.loaded {
		e.set("state", "loaded")
		// The captured load context (4096, LM Studio's default) unless the
		// caller gave one; never above the model's maximum.
		var ctx int
		_ = json.Unmarshal(tpls.get(0, "loaded_context_length").raw, &ctx)
		if l.opts.Models != nil && m.ContextLength > 0 {
			ctx = m.ContextLength
		}
		if m.ContextLength > 0 && ctx > m.ContextLength {
			ctx = m.ContextLength
		}
		e.insertAfter("max_context_length", "loaded_context_length", ctx)
	} else {
		e.set("state", "not-loaded")
		e.del("loaded_context_length")
	}
	return e
}

func (l *lmstudio) v0Models(c *call) {
	fx := lsfx("api_v0_models.http")
	n := bodyNode(fx)
	var entries []*jnode
	for _, m := range l.snapshot() {
		entries = append(entries, l.v0Entry(m))
	}
	n.set("data", arr(entries...))
	c.replyNode(fx, 0, n)
}

func (l *lmstudio) v0Model(c *call, id string) {
	for _, m := range l.snapshot() {
		if m.Name == id {
			c.replyNode(lsfx("api_v0_models_one.http"), 0, l.v0Entry(m))
			return
		}
	}
	// Not captured: the unknown-model envelope with its 404.
	l.unknownModel(c, id)
}

func (l *lmstudio) unknownModel(c *call, name string) {
	var ids []string
	for _, m := range l.snapshot() {
		ids = append(ids, m.Name)
	}
	fx := lsfx("error_unknown_model.http")
	n := bodyNode(fx)
	n.get("error").set("message", fmt.Sprintf("Model %q not found. Please specify a valid model.\n\nYour models:\n\n%s", name, strings.Join(ids, "\n")))
	c.replyNode(fx, 0, n)
}

// resolve picks the model that answers: the named one (loading it, JIT),
// else the only loaded model (LM Studio ignores the name then), else 404.
func (l *lmstudio) resolve(c *call, name string) (lmsModel, bool) {
	l.mu.Lock()
	var only lmsModel
	loaded := 0
	for _, m := range l.models {
		if m.Name == name {
			m.loaded = true
			out := *m
			l.mu.Unlock()
			return out, true
		}
		if m.loaded {
			loaded++
			only = *m
		}
	}
	l.mu.Unlock()
	if loaded == 1 {
		return only, true
	}
	l.unknownModel(c, name)
	return lmsModel{}, false
}

func (l *lmstudio) inference(c *call, what string, v0 bool) {
	if c.failure == FailLoading || len(l.models) == 0 {
		c.replay(lsfx("error_no_models_loaded.http"))
		return
	}
	req, err := parseJSON(c.body)
	if err != nil || req.kind != '{' {
		// DERIVED (not captured): the OpenAI envelope of its other 400.
		fx := lsfx("error_no_models_loaded.http")
		n := bodyNode(fx)
		n.get("error").set("message", "Invalid JSON in request body")
		n.get("error").set("param", nil)
		c.replyNode(fx, 0, n)
		return
	}
	m, ok := l.resolve(c, stringField(req, "model"))
	if !ok {
		return
	}
	stream := boolField(req, "stream", false)
	switch what {
	case "chat":
		if stream { // v0 streams the v1 chunks (no stats)
			fx := lsfx("v1_chat_completions_stream.http")
			c.stream(fx, l.own(sseNodes(fx), m.Name), sse)
			return
		}
		if v0 {
			fx := lsfx("api_v0_chat_completions.http")
			c.replyNode(fx, 0, l.v0Extras(bodyNode(fx), m))
			return
		}
		fx := lsfx("v1_chat_completions.http")
		n := bodyNode(fx)
		l.own([]*jnode{n}, m.Name)
		c.replyNode(fx, 0, n)
	case "completions":
		if stream {
			fx := lsfx("v1_chat_completions_stream.http")
			c.stream(fx, l.own(completionChunks(sseNodes(fx)), m.Name), sse)
			return
		}
		fx := lsfx("api_v0_completions.http")
		n := l.v0Extras(bodyNode(fx), m)
		if !v0 {
			// DERIVED v1 body: no v0 extras, v1's "stats": {} and
			// system_fingerprint as on v1 chat.
			n.del("model_info")
			n.del("runtime")
			n.set("stats", obj())
			n.set("system_fingerprint", m.Name)
		}
		c.replyNode(fx, 0, n)
	case "embeddings":
		fx := lsfx("api_v0_embeddings.http")
		n := bodyNode(fx)
		// The answer names the model "<id>@<quant>"; the suffix is the captured one.
		captured := n.get("model").str()
		n.set("model", m.Name+captured[strings.LastIndex(captured, "@"):])
		if count := inputCount(req.get("input")); count >= 0 {
			data := cycle(n.get("data").vals, count)
			for i, d := range data {
				d.set("index", i)
			}
			n.set("data", arr(data...))
		}
		c.replyNode(fx, 0, n)
	}
}

// own names the model in OpenAI-compat answers: "model" and, on LM Studio,
// "system_fingerprint" (it is the model id).
func (l *lmstudio) own(nodes []*jnode, name string) [][]byte {
	for _, n := range nodes {
		if n != nil {
			n.setIfPresent("model", name)
			n.setIfPresent("system_fingerprint", name)
		}
	}
	return eventBytes(nodes)
}

// v0Extras names the model in a /api/v0 answer and its model_info.
func (l *lmstudio) v0Extras(n *jnode, m lmsModel) *jnode {
	n.set("model", m.Name)
	if m.ContextLength > 0 {
		n.get("model_info").setIfPresent("context_length", m.ContextLength)
	}
	return n
}

// completionChunks is DERIVED: chat stream chunks turned into completion
// chunks ("text_completion", choices[].text instead of delta).
func completionChunks(events []*jnode) []*jnode {
	for _, e := range events {
		if e == nil {
			continue
		}
		e.set("object", "text_completion")
		if id := e.get("id").str(); strings.HasPrefix(id, "chatcmpl-") {
			e.set("id", "cmpl-"+strings.TrimPrefix(id, "chatcmpl-")) // as its non-stream completions
		}
		for _, ch := range e.get("choices").vals {
			text := ch.get("delta", "content")
			if text == nil {
				text = jv("")
			}
			out := obj("index", ch.get("index"), "text", text, "logprobs", ch.get("logprobs"), "finish_reason", ch.get("finish_reason"))
			*ch = *out
		}
	}
	return events
}
