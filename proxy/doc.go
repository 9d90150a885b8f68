// Package proxy is FLM's HTTP(S) adapter: one endpoint for every API
// family FLM serves (OpenAI Chat Completions, Completions and Embeddings;
// Anthropic Messages; OpenAI Responses; the Ollama API), its security chain
// (IP allowlist, Host check, CORS, body limit, rate limits, API keys and
// their model scopes), streaming relay to engines, and TLS.
//
// Security: client credentials (Authorization, Cookie, x-api-key) are never
// forwarded to an engine, and nothing reaches an engine except through the
// routes of those families; Ollama's admin routes (/api/pull, /api/delete
// …) are not among them.
package proxy
