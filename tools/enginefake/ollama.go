package enginefake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Ollama 0.33.0-rc2, captured live (fixtures/ollama). It is a Go (gin)
// server: no Server header, Date on every answer, errors as {"error": "..."}
// on the native API and as an OpenAI envelope on /v1. Its decoding errors
// are encoding/json's, so the fake produces them with encoding/json.

// ollamaCaptured are the models of the capture: names as /api/tags lists them.
var ollamaCaptured = []Model{
	{Name: "tiny:latest", ContextLength: 2048},
	{Name: "tiny-embed:latest", Embedding: true, ContextLength: 2048},
}

// ollamaLoadWait is how long a request waits for a "loading" model.
const ollamaLoadWait = 60 * time.Second

// ollamaRoutes: registered paths and their methods (gin answers 405 with an
// Allow header for a known path and another method, 404 text otherwise).
var ollamaRoutes = map[string]string{
	"/":                    "GET, HEAD",
	"/api/version":         "GET, HEAD",
	"/api/tags":            "GET, HEAD",
	"/api/ps":              "GET",
	"/api/show":            "POST",
	"/api/chat":            "POST",
	"/api/generate":        "POST",
	"/api/embed":           "POST",
	"/api/embeddings":      "POST",
	"/v1/models":           "GET",
	"/v1/chat/completions": "POST",
	"/v1/completions":      "POST",
	"/v1/embeddings":       "POST",
	"/v1/messages":         "POST",
	"/v1/responses":        "POST",
}

type ollama struct {
	opts   Options
	models []Model

	mu     sync.Mutex
	loaded []string // names in load order, as /api/ps lists them
}

func newOllama(opts Options) *ollama {
	o := &ollama{opts: opts, models: ollamaCaptured}
	if opts.Models != nil {
		o.models = nil
		for _, m := range opts.Models {
			m.Name = ollamaName(m.Name)
			o.models = append(o.models, m)
		}
	}
	return o
}

// ollamaName completes a name the way Ollama does: no tag means ":latest".
func ollamaName(n string) string {
	if !strings.Contains(n[strings.LastIndex(n, "/")+1:], ":") {
		return n + ":latest"
	}
	return n
}

func (o *ollama) lookup(name string) (Model, bool) {
	full := ollamaName(name)
	for _, m := range o.models {
		if m.Name == full {
			return m, true
		}
	}
	return Model{}, false
}

func (o *ollama) ctx(m Model, captured int) int {
	if m.ContextLength > 0 {
		return m.ContextLength
	}
	return captured
}

func (o *ollama) markLoaded(m Model, on bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, n := range o.loaded {
		if n == m.Name {
			o.loaded = append(o.loaded[:i], o.loaded[i+1:]...)
			break
		}
	}
	if on {
		o.loaded = append(o.loaded, m.Name)
	}
}

func ofx(name string) *Fixture { return mustFixture("ollama/" + name) }

func (o *ollama) serve(c *call) {
	p := c.r.URL.Path
	allowed, ok := ollamaRoutes[p]
	if !ok {
		if rest, found := strings.CutPrefix(p, "/v1/models/"); found && rest != "" && !strings.Contains(rest, "/") {
			// gin's /v1/models/:model matches one path segment only, so a
			// name with a '/' cannot be retrieved here (it 404s for real).
			allowed, ok = "GET", true
		}
	}
	if !ok {
		c.replay(ofx("error_unknown_path.http"))
		return
	}
	if !methodIn(c.r.Method, allowed) {
		c.header = http.Header{"Allow": {allowed}}
		c.replay(ofx("error_wrong_method_get_api_chat.http"))
		return
	}
	switch {
	case p == "/":
		c.replay(ofx("root.http")) // HEAD: net/http drops the body, keeps Content-Length: 17
	case p == "/api/version":
		n := bodyNode(ofx("api_version.http"))
		if o.opts.Version != "" {
			n.set("version", o.opts.Version)
		}
		c.replyNode(ofx("api_version.http"), 0, n)
	case p == "/api/tags":
		o.tags(c)
	case p == "/api/ps":
		o.ps(c)
	case p == "/api/show":
		o.show(c)
	case p == "/api/chat":
		o.chat(c)
	case p == "/api/generate":
		o.generate(c)
	case p == "/api/embed":
		o.embed(c)
	case p == "/api/embeddings":
		o.embeddingsLegacy(c)
	case p == "/v1/models":
		o.v1Models(c)
	case strings.HasPrefix(p, "/v1/models/"):
		o.v1Model(c, strings.TrimPrefix(p, "/v1/models/"))
	case p == "/v1/chat/completions":
		o.v1Chat(c)
	case p == "/v1/completions":
		o.v1Completions(c)
	case p == "/v1/embeddings":
		o.v1Embeddings(c)
	case p == "/v1/messages":
		o.v1Messages(c)
	case p == "/v1/responses":
		o.v1Responses(c)
	}
}

// nativeErr answers {"error": msg} with the captured native error headers.
func (o *ollama) nativeErr(c *call, status int, msg string) {
	fx := ofx("error_api_chat_malformed_json.http")
	c.replyNode(fx, status, bodyNode(fx).set("error", msg))
}

// openaiErr answers the /v1 error envelope, cloned from the given capture.
func (o *ollama) openaiErr(c *call, fixture string, status int, msg string) {
	fx := ofx(fixture)
	n := bodyNode(fx)
	n.get("error").set("message", msg)
	c.replyNode(fx, status, n)
}

// fail500 is Ollama's typical 500: the runner died.
func (o *ollama) fail500(c *call) {
	const msg = "llama runner process has terminated: exit status 2"
	if c.r.URL.Path == "/v1/messages" {
		o.anthropicErr(c, http.StatusInternalServerError, "api_error", msg)
		return
	}
	if strings.HasPrefix(c.r.URL.Path, "/v1/") {
		// The /v1 writer's envelope, as in error_v1_embeddings_on_chat_model.
		o.openaiErr(c, "error_v1_embeddings_on_chat_model.http", http.StatusInternalServerError, msg)
		return
	}
	o.nativeErr(c, http.StatusInternalServerError, msg)
}

// decodeGo decodes the body's first JSON value with encoding/json, which is
// what gin does for Ollama: the error texts are therefore the real ones
// ("unexpected EOF", "invalid character 'b' looking for ...").
func decodeGo(body []byte) (*jnode, error) {
	var raw json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&raw); err != nil {
		return nil, err
	}
	n, err := parseJSON(raw)
	if err != nil || n.kind != '{' {
		return &jnode{kind: '{'}, nil
	}
	return n, nil
}

// nativeRequest decodes a native API body; false once it has answered.
func (o *ollama) nativeRequest(c *call) (*jnode, bool) {
	req, err := decodeGo(c.body)
	if errors.Is(err, io.EOF) {
		// Not captured: the text is from Ollama's server/routes.go.
		o.nativeErr(c, http.StatusBadRequest, "missing request body")
		return nil, false
	}
	if err != nil {
		o.nativeErr(c, http.StatusBadRequest, err.Error())
		return nil, false
	}
	return req, true
}

// waitLoading: while FailLoading, requests that need a model wait like a
// cold load does (Ollama has no "loading" answer).
func (o *ollama) waitLoading(c *call) bool {
	if c.failure != FailLoading {
		return true
	}
	c.note = "waited for load"
	if !c.waitWhileFailure(FailLoading, ollamaLoadWait) {
		return false
	}
	f := c.s.Failure()
	if f == FailLoading {
		f = FailNone
	}
	c.failure = f
	return true
}

// keepAliveZero reports keep_alive 0 ("unload after this request").
func keepAliveZero(req *jnode) bool {
	v := req.get("keep_alive")
	if v == nil {
		return false
	}
	switch s := strings.Trim(string(v.raw), `"`); s {
	case "0", "0s", "0m", "0h", "0.0":
		return true
	}
	return false
}

func (o *ollama) tags(c *call) {
	if len(o.models) == 0 {
		c.replay(mustFixture("ollama/no_models/api_tags_empty.http"))
		return
	}
	fx := ofx("api_tags.http")
	tpl := bodyNode(fx)
	var entries []*jnode
	for _, m := range o.models {
		// The embedding entry keeps its captured capabilities ["completion"]:
		// /api/tags really disagrees with /api/show there.
		e := tpl.get("models", pick(m.Embedding, 1, 0)).clone()
		e.set("name", m.Name)
		e.set("model", m.Name)
		entries = append(entries, e)
	}
	tpl.set("models", arr(entries...))
	c.replyNode(fx, 0, tpl)
}

func (o *ollama) ps(c *call) {
	o.mu.Lock()
	loaded := append([]string(nil), o.loaded...)
	o.mu.Unlock()
	if len(loaded) == 0 {
		c.replay(ofx("api_ps_before_load.http"))
		return
	}
	fx := ofx("api_ps_two_loaded.http")
	tpl := bodyNode(fx)
	var entries []*jnode
	for _, name := range loaded {
		m, ok := o.lookup(name)
		if !ok {
			continue
		}
		e := tpl.get("models", pick(m.Embedding, 1, 0)).clone()
		e.set("name", m.Name)
		e.set("model", m.Name)
		e.set("expires_at", time.Now().Add(5*time.Minute).UTC().Format(time.RFC3339Nano))
		e.set("context_length", o.ctx(m, 2048))
		entries = append(entries, e)
	}
	tpl.set("models", arr(entries...))
	c.replyNode(fx, 0, tpl)
}

func (o *ollama) show(c *call) {
	req, ok := o.nativeRequest(c)
	if !ok {
		return
	}
	name := stringField(req, "model")
	if name == "" {
		name = stringField(req, "name") // the older field, still accepted
	}
	if name == "" {
		o.nativeErr(c, http.StatusBadRequest, "model is required")
		return
	}
	m, ok := o.lookup(name)
	if !ok {
		fx := ofx("error_api_show_unknown_model.http")
		c.replyNode(fx, 0, bodyNode(fx).set("error", fmt.Sprintf("model '%s' not found", ollamaName(name))))
		return
	}
	// No verbose capture of the embedding model: it gets its plain show.
	fx, captured := ofx("api_show.http"), "tiny:latest"
	switch {
	case m.Embedding:
		fx, captured = ofx("api_show_embed_model.http"), "tiny-embed:latest"
	case boolField(req, "verbose", false):
		fx = ofx("api_show_verbose.http")
	}
	n := bodyNode(fx)
	if mf := n.get("modelfile"); mf.isString() {
		n.set("modelfile", strings.ReplaceAll(mf.str(), captured, m.Name))
	}
	n.get("model_info").setIfPresent("llama.context_length", o.ctx(m, 2048))
	c.replyNode(fx, 0, n)
}

// model resolves the "model" of a native request; false once it answered.
func (o *ollama) model(c *call, req *jnode) (string, Model, bool) {
	name := stringField(req, "model")
	if name == "" {
		o.nativeErr(c, http.StatusBadRequest, "model is required")
		return "", Model{}, false
	}
	m, ok := o.lookup(name)
	if !ok {
		o.nativeErr(c, http.StatusNotFound, fmt.Sprintf("model '%s' not found", name))
		return "", Model{}, false
	}
	return name, m, true
}

// echoModel sets "model" to the name as the client wrote it, like Ollama.
func echoModel(nodes []*jnode, name string) [][]byte {
	for _, n := range nodes {
		n.setIfPresent("model", name)
	}
	return eventBytes(nodes)
}

func (o *ollama) chat(c *call) {
	req, ok := o.nativeRequest(c)
	if !ok {
		return
	}
	name, m, ok := o.model(c, req)
	if !ok {
		return
	}
	if m.Embedding {
		o.nativeErr(c, http.StatusBadRequest, fmt.Sprintf("%q does not support chat", name))
		return
	}
	if !o.waitLoading(c) {
		return
	}
	if msgs := req.get("messages"); msgs == nil || msgs.isArray() && len(msgs.vals) == 0 {
		o.loadOnly(c, req, name, m)
		return
	}
	o.markLoaded(m, true)
	if boolField(req, "stream", true) { // Ollama streams unless told not to
		fx := ofx("api_chat_stream.http")
		c.stream(fx, echoModel(ndjsonNodes(fx), name), ndjson)
	} else {
		fx := ofx("api_chat.http")
		c.replyNode(fx, 0, bodyNode(fx).set("model", name))
	}
	if keepAliveZero(req) {
		o.markLoaded(m, false)
	}
}

// loadOnly answers a chat without messages, which only loads the model (or
// unloads it, with keep_alive 0). DERIVED: ChatHandler's answer for it is the
// captured chat answer without its (omitempty) timings, an empty message and
// done_reason "load"/"unload", as in the captured generate unload.
func (o *ollama) loadOnly(c *call, req *jnode, name string, m Model) {
	fx := ofx("api_chat.http")
	n := bodyNode(fx)
	for _, k := range []string{"total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"} {
		n.del(k)
	}
	n.set("model", name)
	n.set("created_at", time.Now().UTC().Format(time.RFC3339Nano))
	n.get("message").set("content", "")
	unload := keepAliveZero(req)
	n.set("done_reason", pick(unload, "unload", "load"))
	o.markLoaded(m, !unload)
	c.replyNode(fx, 0, n)
}

func (o *ollama) generate(c *call) {
	req, ok := o.nativeRequest(c)
	if !ok {
		return
	}
	name, m, ok := o.model(c, req)
	if !ok {
		return
	}
	if stringField(req, "prompt") == "" && !req.has("images") {
		// An empty prompt only loads (or, with keep_alive 0, unloads) the
		// model. The unload answer is captured; the load answer is the same
		// with done_reason "load" (derived from Ollama's GenerateHandler).
		if !o.waitLoading(c) {
			return
		}
		fx := ofx("api_generate_unload_keep_alive_0.http")
		n := bodyNode(fx).set("model", name)
		n.set("created_at", time.Now().UTC().Format(time.RFC3339Nano))
		if keepAliveZero(req) {
			o.markLoaded(m, false)
		} else {
			n.set("done_reason", "load")
			o.markLoaded(m, true)
		}
		c.replyNode(fx, 0, n)
		return
	}
	if m.Embedding {
		// Not captured; the text is GenerateHandler's, like the chat one.
		o.nativeErr(c, http.StatusBadRequest, fmt.Sprintf("%q does not support generate", name))
		return
	}
	if !o.waitLoading(c) {
		return
	}
	o.markLoaded(m, true)
	raw := boolField(req, "raw", false)
	if boolField(req, "stream", true) {
		fx := ofx("api_generate_stream.http")
		lines := ndjsonNodes(fx)
		if raw { // raw mode returns no context (see api_generate_raw)
			lines[len(lines)-1].del("context")
		}
		c.stream(fx, echoModel(lines, name), ndjson)
	} else {
		fx := ofx(pick(raw, "api_generate_raw.http", "api_generate.http"))
		c.replyNode(fx, 0, bodyNode(fx).set("model", name))
	}
	if keepAliveZero(req) {
		o.markLoaded(m, false)
	}
}

func (o *ollama) embed(c *call) {
	req, ok := o.nativeRequest(c)
	if !ok {
		return
	}
	name := stringField(req, "model")
	if name == "" {
		o.nativeErr(c, http.StatusBadRequest, "model is required")
		return
	}
	m, ok := o.lookup(name)
	if !ok {
		fx := ofx("error_api_embed_unknown_model.http")
		c.replyNode(fx, 0, bodyNode(fx).set("error", fmt.Sprintf("model %q not found, try pulling it first", name)))
		return
	}
	if !m.Embedding {
		c.replay(ofx("error_api_embed_on_chat_model.http"))
		return
	}
	if !o.waitLoading(c) {
		return
	}
	o.markLoaded(m, true)
	count := inputCount(req.get("input"))
	if count < 0 {
		fx := ofx("api_embed.http")
		c.replyNode(fx, 0, bodyNode(fx).set("model", name))
		return
	}
	fx := ofx("api_embed_batch.http")
	n := bodyNode(fx).set("model", name)
	n.set("embeddings", arr(cycle(n.get("embeddings").vals, count)...))
	c.replyNode(fx, 0, n)
}

// embeddingsLegacy is the old /api/embeddings (one prompt, "embedding").
// Only its success is captured; its errors are /api/embed's.
func (o *ollama) embeddingsLegacy(c *call) {
	req, ok := o.nativeRequest(c)
	if !ok {
		return
	}
	name := stringField(req, "model")
	m, ok := o.lookup(name)
	switch {
	case name == "":
		o.nativeErr(c, http.StatusBadRequest, "model is required")
	case !ok:
		fx := ofx("error_api_embed_unknown_model.http")
		c.replyNode(fx, 0, bodyNode(fx).set("error", fmt.Sprintf("model %q not found, try pulling it first", name)))
	case !m.Embedding:
		c.replay(ofx("error_api_embed_on_chat_model.http"))
	default:
		if !o.waitLoading(c) {
			return
		}
		o.markLoaded(m, true)
		c.replay(ofx("api_embeddings_legacy.http"))
	}
}

func (o *ollama) v1Models(c *call) {
	if len(o.models) == 0 {
		c.replay(mustFixture("ollama/no_models/v1_models_empty.http")) // "data": null
		return
	}
	fx := ofx("v1_models.http")
	n := bodyNode(fx)
	tpl := n.get("data", 0)
	var entries []*jnode
	for _, m := range o.models {
		entries = append(entries, tpl.clone().set("id", m.Name))
	}
	n.set("data", arr(entries...))
	c.replyNode(fx, 0, n)
}

func (o *ollama) v1Model(c *call, name string) {
	if _, ok := o.lookup(name); !ok {
		o.openaiErr(c, "error_v1_models_one_unknown.http", 0, fmt.Sprintf("model '%s' not found", ollamaName(name)))
		return
	}
	fx := ofx("v1_models_one.http")
	c.replyNode(fx, 0, bodyNode(fx).set("id", name)) // echoes the name as asked
}

// v1Request decodes a /v1 body; the middleware answers decoding errors with
// the envelope of error_v1_chat_malformed_json (or the embeddings one).
func (o *ollama) v1Request(c *call, malformed string) (*jnode, bool) {
	req, err := decodeGo(c.body)
	if err != nil {
		o.openaiErr(c, malformed, 0, err.Error())
		return nil, false
	}
	return req, true
}

// v1ModelFor resolves "model" for /v1 chat and completions. The 400s for a
// missing model and a model of the wrong sort are not captured: they are the
// native texts in the /v1 writer's envelope (headers of the captured 404).
func (o *ollama) v1ModelFor(c *call, req *jnode, what string) (string, Model, bool) {
	name := stringField(req, "model")
	if name == "" {
		o.openaiInvalid(c, "model is required")
		return "", Model{}, false
	}
	m, ok := o.lookup(name)
	if !ok {
		o.openaiErr(c, "error_v1_chat_unknown_model.http", 0, fmt.Sprintf("model '%s' not found", name))
		return "", Model{}, false
	}
	if m.Embedding {
		o.openaiInvalid(c, fmt.Sprintf("%q does not support %s", name, what))
		return "", Model{}, false
	}
	return name, m, true
}

func (o *ollama) openaiInvalid(c *call, msg string) {
	fx := ofx("error_v1_chat_unknown_model.http")
	n := bodyNode(fx)
	n.get("error").set("message", msg)
	n.get("error").set("type", "invalid_request_error")
	c.replyNode(fx, http.StatusBadRequest, n)
}

func (o *ollama) v1Chat(c *call) {
	req, ok := o.v1Request(c, "error_v1_chat_malformed_json.http")
	if !ok {
		return
	}
	if msgs := req.get("messages"); !msgs.isArray() || len(msgs.vals) == 0 {
		c.replay(ofx("error_v1_chat_missing_messages.http"))
		return
	}
	name, m, ok := o.v1ModelFor(c, req, "chat")
	if !ok || !o.waitLoading(c) {
		return
	}
	o.markLoaded(m, true)
	if boolField(req, "stream", false) {
		fx := ofx(pick(includeUsage(req), "v1_chat_completions_stream_usage.http", "v1_chat_completions_stream.http"))
		c.stream(fx, echoModel(sseNodes(fx), name), sse)
		return
	}
	fx := ofx("v1_chat_completions.http")
	c.replyNode(fx, 0, bodyNode(fx).set("model", name))
}

func (o *ollama) v1Completions(c *call) {
	req, ok := o.v1Request(c, "error_v1_chat_malformed_json.http")
	if !ok {
		return
	}
	name, m, ok := o.v1ModelFor(c, req, "generate")
	if !ok || !o.waitLoading(c) {
		return
	}
	o.markLoaded(m, true)
	if boolField(req, "stream", false) {
		fx := ofx("v1_completions_stream.http")
		c.stream(fx, echoModel(sseNodes(fx), name), sse)
		return
	}
	fx := ofx("v1_completions.http")
	c.replyNode(fx, 0, bodyNode(fx).set("model", name))
}

func (o *ollama) v1Embeddings(c *call) {
	req, ok := o.v1Request(c, "error_v1_embeddings_malformed_json.http")
	if !ok {
		return
	}
	name := stringField(req, "model")
	m, ok := o.lookup(name)
	if !ok {
		o.openaiErr(c, "error_v1_embeddings_unknown_model.http", 0, fmt.Sprintf("model %q not found, try pulling it first", name))
		return
	}
	if !m.Embedding {
		c.replay(ofx("error_v1_embeddings_on_chat_model.http"))
		return
	}
	if !o.waitLoading(c) {
		return
	}
	o.markLoaded(m, true)
	count := inputCount(req.get("input"))
	if count < 0 {
		fx := ofx("v1_embeddings.http")
		c.replyNode(fx, 0, bodyNode(fx).set("model", name))
		return
	}
	fx := ofx("v1_embeddings_batch.http")
	n := bodyNode(fx).set("model", name)
	data := cycle(n.get("data").vals, count)
	for i, d := range data {
		d.set("index", i)
	}
	n.set("data", arr(data...))
	c.replyNode(fx, 0, n)
}

// anthropicErr answers Anthropic's error envelope, cloned from the captured
// unknown-model 404 (fixtures/ollama/api_families). Other statuses, types
// and texts are DERIVED: Ollama's anthropic middleware wraps the handler's
// error the same way.
func (o *ollama) anthropicErr(c *call, status int, typ, msg string) {
	fx := ofx("api_families/v1_messages_unknown_model.http")
	n := bodyNode(fx)
	n.get("error").set("type", typ)
	n.get("error").set("message", msg)
	c.replyNode(fx, status, n)
}

// echoNested sets the model as the client wrote it, also where Anthropic's
// message_start and OpenAI's response.* events carry it one level down.
func echoNested(nodes []*jnode, name string) {
	for _, n := range nodes {
		n.setIfPresent("model", name)
		n.get("message").setIfPresent("model", name)
		n.get("response").setIfPresent("model", name)
	}
}

// v1Messages is Anthropic's /v1/messages, which Ollama speaks natively
// (fixtures/ollama/api_families). It does not stream unless asked to.
func (o *ollama) v1Messages(c *call) {
	req, err := decodeGo(c.body)
	if err != nil {
		o.anthropicErr(c, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	name := stringField(req, "model")
	if name == "" {
		o.anthropicErr(c, http.StatusBadRequest, "invalid_request_error", "model is required")
		return
	}
	m, ok := o.lookup(name)
	if !ok {
		o.anthropicErr(c, http.StatusNotFound, "not_found_error", fmt.Sprintf("model '%s' not found", name))
		return
	}
	if m.Embedding {
		o.anthropicErr(c, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("%q does not support chat", name))
		return
	}
	if !o.waitLoading(c) {
		return
	}
	o.markLoaded(m, true)
	if boolField(req, "stream", false) {
		fx := ofx("api_families/v1_messages_stream.http")
		events := sseNodes(fx)
		echoNested(events, name)
		c.stream(fx, eventBytes(events), sse)
		return
	}
	fx := ofx(pick(req.has("system") || req.has("stop_sequences"), "api_families/v1_messages_system.http", "api_families/v1_messages.http"))
	c.replyNode(fx, 0, bodyNode(fx).set("model", name))
}

// v1Responses is OpenAI's /v1/responses (fixtures/ollama/api_families). Its
// answer echoes the request's instructions and max_output_tokens (null when
// absent); errors are the /v1 writer's, as for chat.
func (o *ollama) v1Responses(c *call) {
	req, ok := o.v1Request(c, "error_v1_chat_malformed_json.http")
	if !ok {
		return
	}
	name, m, ok := o.v1ModelFor(c, req, "chat")
	if !ok || !o.waitLoading(c) {
		return
	}
	o.markLoaded(m, true)
	echo := func(n *jnode) {
		if n == nil {
			return
		}
		n.setIfPresent("model", name)
		for _, k := range []string{"instructions", "max_output_tokens"} {
			if v := req.get(k); v != nil {
				n.setIfPresent(k, v.clone())
			} else {
				n.setIfPresent(k, nil)
			}
		}
	}
	if boolField(req, "stream", false) {
		fx := ofx("api_families/v1_responses_stream.http")
		events := sseNodes(fx)
		for _, e := range events {
			echo(e.get("response"))
		}
		c.stream(fx, eventBytes(events), sse)
		return
	}
	fx := ofx(pick(req.get("input").isArray(), "api_families/v1_responses_messages.http", "api_families/v1_responses.http"))
	n := bodyNode(fx)
	echo(n)
	c.replyNode(fx, 0, n)
}
