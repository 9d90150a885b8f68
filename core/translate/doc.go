// Package translate holds what FLM's API families share when they are
// translated to and from OpenAI's Chat Completions, the one API every engine
// speaks: the Chat Completions wire types (the request FLM builds, the answer
// and stream chunks it reads), the error a request that cannot be translated
// gets, a splitter for an engine's SSE stream, and the clock and ids of
// translated answers.
//
// The families themselves live in sub-packages, each pure and stdlib-only:
//
//   - anthropic: Anthropic's Messages API (POST /v1/messages)
//   - responses: OpenAI's Responses API, stateless subset (POST /v1/responses)
//   - ollamaapi: Ollama's own API (/api/chat, /api/generate, /api/embed …)
//
// Each sub-package parses and validates a client's request, builds the body
// for the engine, and turns the engine's answer — a JSON body or a stream of
// chunk payloads — back into the client's shapes. Translation never guesses:
// what an engine cannot honour (tools for a model without tools, images for
// a model without vision, stateful features) is an *Error with an HTTP
// status and a message, never a silently different answer.
//
// Security: requests are decoded into typed values and encoded anew, so the
// engine only ever sees fields FLM understood (no duplicate-key or smuggled
// field reaches it). Nothing here logs; messages never quote prompt text.
package translate
