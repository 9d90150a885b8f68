package proxy

import (
	"net/http"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/unjuno/flm/core/gateway"
)

// routes builds the request chain of PRODUCT.md §6, outermost first:
// request id → access log → panic recovery → IP allowlist → Host check →
// CORS (preflight answered before auth) → body limit → per-IP limiter →
// route → API key → per-key limit → handler → engine. Unknown paths are 404
// before any key is asked for: nothing but these routes reaches an engine.
func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HTTPErrorHandler = s.errorHandler
	e.Logger = s.log
	e.Pre(s.withRequestID, s.accessLog, s.recoverPanics, s.ipFilter, s.hostCheck, s.cors, s.bodyLimit, s.ipLimiter)
	auth := []echo.MiddlewareFunc{s.requireKey, s.keyLimiter}
	e.GET("/health", s.health)
	e.GET("/metrics", s.metricsEndpoint)
	e.GET("/v1/models", s.listModels, auth...)
	e.POST("/v1/chat/completions", s.forwardRoute(gateway.Chat), auth...)
	e.POST("/v1/completions", s.forwardRoute(gateway.Completions), auth...)
	e.POST("/v1/embeddings", s.forwardRoute(gateway.Embeddings), auth...)
	// Anthropic's Messages API and OpenAI's Responses API
	// (family_anthropic.go, family_responses.go).
	e.POST("/v1/messages", s.messages, auth...)
	e.POST("/v1/messages/count_tokens", s.countTokens, auth...)
	e.POST("/v1/responses", s.responsesRoute, auth...)
	// The Ollama-API facade (family_ollama.go); Ollama's admin routes stay
	// unregistered, so they are 404 like every unknown path.
	e.GET("/api/version", s.ollamaVersion, auth...)
	e.GET("/api/tags", s.ollamaTags, auth...)
	e.POST("/api/show", s.ollamaShow, auth...)
	e.POST("/api/chat", s.ollamaChat, auth...)
	e.POST("/api/generate", s.ollamaGenerate, auth...)
	e.POST("/api/embed", s.ollamaEmbed(false), auth...)
	e.POST("/api/embeddings", s.ollamaEmbed(true), auth...)
	return e
}

func promHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func (s *Server) health(c *echo.Context) error {
	if s.opts.InstanceID != "" {
		c.Response().Header().Set("X-Flm-Instance", s.opts.InstanceID)
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// metricsEndpoint serves Prometheus metrics to loopback clients, or to
// anyone with a valid key.
func (s *Server) metricsEndpoint(c *echo.Context) error {
	if !clientIP(c).IsLoopback() {
		if err := s.requireKey(func(*echo.Context) error { return nil })(c); err != nil {
			return err
		}
	}
	s.metricsHandler().ServeHTTP(c.Response(), c.Request())
	return nil
}

type modelEntry struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	OwnedBy string   `json:"owned_by"`
	FLM     modelFLM `json:"flm"`
}

type modelFLM struct {
	EngineID      string `json:"engine_id"`
	EngineKind    string `json:"engine_kind"`
	Name          string `json:"name"`
	ContextLength *int   `json:"context_length"`
	Capabilities  any    `json:"capabilities"`
}

// listModels answers GET /v1/models in OpenAI's shape, with flm:// ids and
// FLM's details under "flm": the models the key may use.
func (s *Server) listModels(c *echo.Context) error {
	models := visibleModels(keyRecord(c), s.snap.Load().catalog.Models())
	data := make([]modelEntry, len(models))
	for i, m := range models {
		data[i] = modelEntry{ID: m.ID, Object: "model", OwnedBy: "flm-" + m.EngineID, FLM: modelFLM{
			EngineID: m.EngineID, EngineKind: string(m.EngineKind), Name: m.Name, ContextLength: m.ContextLength, Capabilities: m.Capabilities,
		}}
	}
	return c.JSON(http.StatusOK, map[string]any{"object": "list", "data": data})
}
