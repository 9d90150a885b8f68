// Package proxy is FLM's HTTP(S) adapter: the OpenAI-compatible endpoint,
// its security chain (IP allowlist, Host check, CORS, body limit, rate
// limits, API keys), streaming relay to engines, and TLS.
//
// Security: client credentials (Authorization, Cookie, x-api-key) are never
// forwarded to an engine, and nothing reaches an engine except through the
// OpenAI routes.
package proxy

// Version is the version of the proxy module.
const Version = "0.1.0"
