package enginefake

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// llama-server's router mode (--models-dir; fixtures/llamacpp/router_mode):
// it lists every model with a load status, needs a "model" in each request,
// loads models on demand (autoload) and proxies to a child llama-server.
// Proxied answers carry "Connection: close" (the connection ends after them)
// and chunked framing. The children of the capture ran without
// --embeddings, so /v1/embeddings answers 501 for every model.

var routerCaptured = []Model{
	{Name: "tiny-chat", ContextLength: llamaCapturedCtx},
	{Name: "tiny-embed", Embedding: true, ContextLength: llamaCapturedCtx},
}

type llamaRouter struct {
	l      *llamacpp
	models []Model

	mu     sync.Mutex
	loaded map[string]bool
}

func newLlamaRouter(l *llamacpp, opts Options) (engine, error) {
	l.inRouter = true
	r := &llamaRouter{l: l, models: routerCaptured, loaded: map[string]bool{}}
	if opts.Models != nil {
		r.models = opts.Models
	}
	return r, nil
}

func rfx(name string) *Fixture { return mustFixture("llamacpp/router_mode/" + name) }

func (r *llamaRouter) lookup(name string) (Model, bool) {
	for _, m := range r.models {
		if m.Name == name {
			return m, true
		}
	}
	return Model{}, false
}

func (r *llamaRouter) setLoaded(name string, on bool) (was bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	was = r.loaded[name]
	r.loaded[name] = on
	return was
}

func (r *llamaRouter) isLoaded(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loaded[name]
}

func (r *llamaRouter) fail500(c *call) { r.l.fail500(c) }

func (r *llamaRouter) serve(c *call) {
	p, m := c.r.URL.Path, c.r.Method
	get := llamaGET[p] && p != "/slots"
	post := llamaPOST[p] || p == "/models/load" || p == "/models/unload"
	if c.failure == FailLoading {
		c.replay(lfx(pick(get || post, "loading_health.http", "loading_root.http")))
		return
	}
	switch {
	case (m == http.MethodGet || m == http.MethodHead) && get:
		r.get(c, llamaPath(p))
	case m == http.MethodPost && post:
		r.post(c, llamaPath(p))
	case get || post:
		c.replay(lfx("error_wrong_method.http"))
	default:
		c.replay(lfx("error_unknown_path.http"))
	}
}

func (r *llamaRouter) get(c *call, p string) {
	switch p {
	case "/health", "/v1/health":
		c.replay(rfx("health.http"))
	case "/models", "/v1/models":
		fx := rfx("models_initial.http")
		n := bodyNode(fx)
		var entries []*jnode
		for _, m := range r.models {
			entries = append(entries, r.entry(m, r.isLoaded(m.Name)))
		}
		n.set("data", arr(entries...))
		c.replyNode(fx, 0, n)
	case "/props":
		name := c.r.URL.Query().Get("model")
		if name == "" {
			fx := rfx("props_no_model.http")
			c.replyNode(fx, 0, bodyNode(fx).set("build_info", r.l.build))
			return
		}
		m, ok := r.model(c, name)
		if !ok {
			return
		}
		r.setLoaded(m.Name, true)
		fx := rfx("props_model.http")
		n := bodyNode(fx)
		n.set("model_alias", m.Name)
		n.set("model_path", strings.ReplaceAll(n.get("model_path").str(), "tiny-chat", m.Name))
		n.get("default_generation_settings").setIfPresent("n_ctx", ctxOr(m, llamaCapturedCtx))
		n.setIfPresent("build_info", r.l.build)
		c.replyNode(fx, 0, n)
	case "/metrics":
		if c.r.URL.Query().Get("model") == "" {
			c.replay(rfx("metrics_no_model.http"))
			return
		}
		// Derived: the children run without --metrics.
		c.replay(lfx("metrics_disabled.http"))
	}
}

func ctxOr(m Model, captured int) int {
	if m.ContextLength > 0 {
		return m.ContextLength
	}
	return captured
}

// entry is a model's /models entry, cloned from the captured entry of the
// same sort and status (loaded entries carry "meta", unloaded ones do not).
func (r *llamaRouter) entry(m Model, loaded bool) *jnode {
	var tpl *jnode
	captured := pick(m.Embedding, "tiny-embed", "tiny-chat")
	switch {
	case m.Embedding && loaded:
		tpl = bodyNode(rfx("models_after_load_embed.http")).get("data", 1)
	case m.Embedding:
		tpl = bodyNode(rfx("models_initial.http")).get("data", 1)
	case loaded:
		tpl = bodyNode(rfx("models_after_load.http")).get("data", 0)
	default:
		tpl = bodyNode(rfx("models_initial.http")).get("data", 0)
	}
	tpl.set("id", m.Name)
	tpl.get("status").replaceInStrings(captured, m.Name) // --alias, --model path, preset
	tpl.get("meta").setIfPresent("n_ctx", ctxOr(m, llamaCapturedCtx))
	return tpl
}

// model resolves a requested name; false once it answered the 400.
func (r *llamaRouter) model(c *call, name string) (Model, bool) {
	if name == "" {
		c.replay(rfx("error_no_model_field.http"))
		return Model{}, false
	}
	m, ok := r.lookup(name)
	if !ok {
		fx := rfx("error_unknown_model.http")
		n := bodyNode(fx)
		n.get("error").set("message", fmt.Sprintf("model '%s' not found", name))
		c.replyNode(fx, 0, n)
		return Model{}, false
	}
	return m, true
}

func (r *llamaRouter) post(c *call, p string) {
	req, ok := r.l.parse(c)
	if !ok {
		return
	}
	name := stringField(req, "model")
	switch p {
	case "/models/load", "/models/unload":
		m, ok := r.lookup(name)
		if !ok {
			c.replay(rfx("models_load_unknown.http"))
			return
		}
		r.setLoaded(m.Name, p == "/models/load")
		c.replay(rfx(pick(p == "/models/load", "models_load.http", "models_unload.http")))
		return
	}
	m, ok := r.model(c, name)
	if !ok {
		return
	}
	autoload := !r.setLoaded(m.Name, true)
	child := *r.l // the child llama-server that answers for this model
	child.name, child.ctx = m.Name, ctxOr(m, llamaCapturedCtx)
	switch p {
	case "/v1/chat/completions":
		if !req.has("messages") {
			c.replay(lfx("error_missing_messages.http")) // derived: the child's answer
			return
		}
		if boolField(req, "stream", false) {
			fx := rfx("v1_chat_completions_stream_loaded.http")
			c.rawStream(fx, child.ownAll(sseNodes(fx)))
			return
		}
		fx := rfx(pick(autoload, "v1_chat_completions_autoload.http", "v1_chat_completions_loaded.http"))
		n := bodyNode(fx)
		child.own(n)
		c.replyNode(fx, 0, n)
	case "/v1/embeddings", "/embedding", "/embeddings":
		c.replay(rfx("v1_embeddings_embed_model.http"))
	default:
		// Not captured in router mode: the child's single-model answer
		// (derived), closing the connection like the proxied captures.
		c.header = http.Header{"Connection": {"close"}, "X-Accel-Buffering": {"no"}}
		child.post(c, p, req)
	}
}
