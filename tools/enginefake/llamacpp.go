package enginefake

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
)

// llama.cpp's llama-server b10470, captured live (fixtures/llamacpp). Every
// answer carries "Server: llama.cpp" and an empty Access-Control-Allow-Origin;
// non-streamed answers keep the connection alive (errors close it with
// Connection: close), streamed answers close it although their headers say
// Keep-Alive (see call.rawStream). Single-model mode ignores the request's
// model and reports its own.

const (
	llamaCapturedPath  = "/home/u/llm/models/tiny-chat.gguf" // no --alias
	llamaCapturedAlias = "tiny-chat"                         // embeddings_mode: --alias tiny-chat
	llamaCapturedBuild = "b10470-34af94cd9"
	llamaCapturedCtx   = 2048
)

// llamaGET and llamaPOST are the single-model routes that are captured.
var (
	llamaGET = map[string]bool{
		"/health": true, "/v1/health": true, "/props": true, "/models": true,
		"/v1/models": true, "/slots": true, "/metrics": true, "/api/tags": true,
	}
	llamaPOST = map[string]bool{
		"/v1/chat/completions": true, "/v1/completions": true, "/completion": true,
		"/tokenize": true, "/detokenize": true, "/apply-template": true,
		"/v1/embeddings": true, "/embedding": true, "/embeddings": true,
		"/completions": true, "/chat/completions": true, "/api/chat": true,
		"/v1/messages": true, "/v1/messages/count_tokens": true, "/v1/responses": true,
	}
)

// llamaAlias: paths that llama-server routes to the handler of a captured
// path (tools/server/server.cpp's route table), so their answers are the
// captured ones. Note the Ollama-compatible names: GET /api/tags answers the
// /v1/models body and POST /api/chat answers OpenAI chat, not Ollama NDJSON.
var llamaAlias = map[string]string{
	"/api/tags":         "/v1/models",
	"/completions":      "/completion",
	"/chat/completions": "/v1/chat/completions",
	"/api/chat":         "/v1/chat/completions",
}

// llamaPath is the captured path whose handler answers p.
func llamaPath(p string) string {
	if a, ok := llamaAlias[p]; ok {
		return a
	}
	return p
}

type llamacpp struct {
	opts  Options
	name  string // the model id it reports (path, or alias)
	ctx   int
	build string
	// embed: started with --embeddings. The only capture of that mode also
	// had --alias and --metrics, so the fake answers as that server did:
	// /props and /v1/models as props_alias / v1_models_alias, /metrics on.
	embed bool
	// inRouter: parse errors use the router capture (same shape, its text).
	inRouter bool
}

func newLlamaCpp(opts Options) (engine, error) {
	l := &llamacpp{opts: opts, name: llamaCapturedPath, ctx: llamaCapturedCtx, build: llamaCapturedBuild}
	if opts.Version != "" {
		l.build = opts.Version
	}
	if opts.Router {
		return newLlamaRouter(l, opts)
	}
	if opts.Models != nil {
		if len(opts.Models) == 0 {
			return nil, fmt.Errorf("enginefake: llama.cpp serves one model; Models is empty")
		}
		// Single-model mode serves Models[0] (its name acts as --alias);
		// any Embedding model turns --embeddings on.
		l.name = opts.Models[0].Name
		if opts.Models[0].ContextLength > 0 {
			l.ctx = opts.Models[0].ContextLength
		}
		for _, m := range opts.Models {
			l.embed = l.embed || m.Embedding
		}
	}
	return l, nil
}

func lfx(name string) *Fixture { return mustFixture("llamacpp/" + name) }

func (l *llamacpp) fail500(c *call) {
	fx := lfx("error_malformed_json.http")
	n := bodyNode(fx)
	n.get("error").set("message", "fake engine: injected failure")
	c.replyNode(fx, http.StatusInternalServerError, n)
}

func (l *llamacpp) serve(c *call) {
	p, m := c.r.URL.Path, c.r.Method
	known := llamaGET[p] || llamaPOST[p]
	if c.failure == FailLoading {
		// While loading, every route answers 503 Loading model and closes
		// the connection; "/" (no web UI) and unknown paths still 404.
		if known {
			c.replay(lfx("loading_health.http"))
		} else {
			c.replay(lfx("loading_root.http"))
		}
		return
	}
	switch {
	case p == "/":
		c.replay(lfx("root_no_webui.http"))
	case !known:
		c.replay(lfx("error_unknown_path.http"))
	case (m == http.MethodGet || m == http.MethodHead) && llamaGET[p]:
		l.get(c, llamaPath(p))
	case m == http.MethodPost && llamaPOST[p]:
		req, ok := l.parse(c)
		if ok {
			l.post(c, llamaPath(p), req)
		}
	default:
		c.replay(lfx("error_wrong_method.http")) // a wrong method is a 404 here
	}
}

func (l *llamacpp) get(c *call, p string) {
	switch p {
	case "/health":
		c.replay(lfx("health.http"))
	case "/v1/health":
		c.replay(lfx("v1_health.http"))
	case "/props":
		c.replyNode(l.propsFixture(), 0, l.props())
	case "/models", "/v1/models":
		fx := lfx("v1_models.http")
		if l.embed {
			fx = lfx("embeddings_mode/v1_models_alias.http")
		}
		c.replyNode(fx, 0, l.models(fx))
	case "/slots":
		fx := lfx("slots.http")
		n := bodyNode(fx)
		for _, s := range n.vals {
			s.setIfPresent("n_ctx", l.ctx)
		}
		c.replyNode(fx, 0, n)
	case "/metrics":
		if l.embed {
			c.replay(lfx("embeddings_mode/metrics.http"))
		} else {
			c.replay(lfx("metrics_disabled.http"))
		}
	}
}

func (l *llamacpp) propsFixture() *Fixture {
	if l.embed {
		return lfx("embeddings_mode/props_alias.http")
	}
	return lfx("props.http")
}

func (l *llamacpp) props() *jnode {
	n := bodyNode(l.propsFixture())
	n.set("model_alias", l.name) // model_path stays the captured .gguf path
	n.get("default_generation_settings").setIfPresent("n_ctx", l.ctx)
	n.setIfPresent("build_info", l.build)
	return n
}

// models fills /v1/models (both its Ollama-style models[] and OpenAI data[]).
func (l *llamacpp) models(fx *Fixture) *jnode {
	n := bodyNode(fx)
	if e := n.get("models", 0); e != nil {
		e.set("name", l.name)
		e.set("model", l.name)
	}
	if e := n.get("data", 0); e != nil {
		e.set("id", l.name)
		e.set("aliases", arr(jv(l.name)))
		e.get("meta").setIfPresent("n_ctx", l.ctx)
	}
	return n
}

// parse reads a POST body like llama-server (nlohmann::json): an empty or
// malformed body is a 500 server_error, not a 400. The captured message
// names the captured input's column; the fake sends it as captured.
func (l *llamacpp) parse(c *call) (*jnode, bool) {
	if len(bytes.TrimSpace(c.body)) == 0 {
		c.replay(lfx("error_empty_body.http"))
		return nil, false
	}
	n, err := parseJSON(c.body)
	if err != nil {
		if l.inRouter {
			c.replay(rfx("error_malformed_json.http"))
		} else if llamaPath(c.r.URL.Path) == "/completion" {
			c.replay(lfx("error_completion_malformed_json.http"))
		} else {
			c.replay(lfx("error_malformed_json.http"))
		}
		return nil, false
	}
	return n, true
}

// own sets the fields by which llama-server names itself in a completion.
// Anthropic's message_start and OpenAI's response.* stream events carry the
// model one level down, in "message" or "response".
func (l *llamacpp) own(n *jnode) {
	n.setIfPresent("model", l.name)
	n.setIfPresent("system_fingerprint", l.build)
	n.get("message").setIfPresent("model", l.name)
	n.get("response").setIfPresent("model", l.name)
}

func (l *llamacpp) ownAll(nodes []*jnode) [][]byte {
	for _, n := range nodes {
		if n != nil {
			l.own(n)
		}
	}
	return eventBytes(nodes)
}

func (l *llamacpp) post(c *call, p string, req *jnode) {
	stream := boolField(req, "stream", false)
	switch p {
	case "/v1/chat/completions":
		if !req.has("messages") {
			c.replay(lfx("error_missing_messages.http"))
			return
		}
		if stream {
			fx := lfx(pick(includeUsage(req), "v1_chat_completions_stream_usage.http", "v1_chat_completions_stream.http"))
			c.rawStream(fx, l.ownAll(sseNodes(fx)))
			return
		}
		fx := lfx(pick(l.embed, "embeddings_mode/v1_chat_completions_with_embeddings_on.http", "v1_chat_completions.http"))
		n := bodyNode(fx)
		l.own(n)
		c.replyNode(fx, 0, n)
	case "/v1/completions":
		if stream {
			fx := lfx("v1_completions_stream.http")
			c.rawStream(fx, l.ownAll(sseNodes(fx)))
			return
		}
		fx := lfx("v1_completions.http")
		n := bodyNode(fx)
		l.own(n)
		c.replyNode(fx, 0, n)
	case "/completion":
		if stream { // the native stream has no [DONE]
			fx := lfx("completion_stream.http")
			c.rawStream(fx, l.ownAll(sseNodes(fx)))
			return
		}
		fx := lfx("completion.http")
		n := bodyNode(fx)
		l.own(n)
		c.replyNode(fx, 0, n)
	case "/v1/messages", "/v1/messages/count_tokens":
		l.messages(c, p, req, stream)
	case "/v1/responses":
		l.responses(c, req, stream)
	case "/tokenize":
		c.replay(lfx(pick(boolField(req, "with_pieces", false), "tokenize_with_pieces.http", "tokenize.http")))
	case "/detokenize":
		c.replay(lfx("detokenize.http"))
	case "/apply-template":
		c.replay(lfx("apply_template.http"))
	case "/v1/embeddings", "/embedding", "/embeddings":
		l.embeddings(c, p, req)
	}
}

func (l *llamacpp) embeddings(c *call, p string, req *jnode) {
	if !l.embed {
		c.replay(lfx("v1_embeddings_not_enabled.http"))
		return
	}
	input := req.get("input")
	if input == nil {
		input = req.get("content")
	}
	if p != "/v1/embeddings" {
		// Native: an array of {index, embedding: [[...]]}, one per input.
		fx := lfx("embeddings_mode/" + strings.TrimPrefix(p, "/") + "_native.http")
		n := bodyNode(fx)
		if count := inputCount(input); count >= 0 {
			items := cycle(n.vals, count)
			for i, it := range items {
				it.set("index", i)
			}
			n = arr(items...)
		}
		c.replyNode(fx, 0, n)
		return
	}
	if input == nil {
		c.replay(lfx("embeddings_mode/v1_embeddings_missing_input.http"))
		return
	}
	base64 := stringField(req, "encoding_format") == "base64"
	count := inputCount(input)
	fx := lfx("embeddings_mode/v1_embeddings.http")
	switch {
	case base64:
		fx = lfx("embeddings_mode/v1_embeddings_base64.http")
	case count >= 0:
		fx = lfx("embeddings_mode/v1_embeddings_batch.http")
	}
	n := bodyNode(fx)
	// llama-server echoes the request's model here (and only here).
	n.set("model", pick(stringField(req, "model") != "", stringField(req, "model"), l.name))
	if count >= 0 {
		data := cycle(n.get("data").vals, count)
		for i, d := range data {
			d.set("index", i)
		}
		n.set("data", arr(data...))
	}
	c.replyNode(fx, 0, n)
}

// messages answers Anthropic's /v1/messages (fixtures/llamacpp/api_families),
// which llama-server speaks natively: max_tokens may be left out (the capture
// then ran to the context's end), and count_tokens answers input_tokens only.
// A body without "messages" is not captured: DERIVED, the chat endpoint's 400.
func (l *llamacpp) messages(c *call, p string, req *jnode, stream bool) {
	if !req.has("messages") {
		c.replay(lfx("error_missing_messages.http"))
		return
	}
	switch {
	case p == "/v1/messages/count_tokens":
		c.replay(lfx("api_families/v1_messages_count_tokens.http"))
	case stream:
		fx := lfx("api_families/v1_messages_stream.http")
		c.rawStream(fx, l.ownAll(sseNodes(fx)))
	default:
		fx := lfx("api_families/v1_messages.http")
		switch {
		case req.has("system") || req.has("stop_sequences"):
			fx = lfx("api_families/v1_messages_system.http")
		case !req.has("max_tokens"):
			fx = lfx("api_families/v1_messages_missing_max_tokens.http")
		}
		n := bodyNode(fx)
		l.own(n)
		c.replyNode(fx, 0, n)
	}
}

// responses answers OpenAI's /v1/responses (fixtures/llamacpp/api_families).
// A body without "input" is not captured: DERIVED, the chat endpoint's 400.
func (l *llamacpp) responses(c *call, req *jnode, stream bool) {
	if !req.has("input") {
		c.replay(lfx("error_missing_messages.http"))
		return
	}
	if stream {
		fx := lfx("api_families/v1_responses_stream.http")
		c.rawStream(fx, l.ownAll(sseNodes(fx)))
		return
	}
	fx := lfx(pick(req.get("input").isArray(), "api_families/v1_responses_messages.http", "api_families/v1_responses.http"))
	n := bodyNode(fx)
	l.own(n)
	c.replyNode(fx, 0, n)
}
