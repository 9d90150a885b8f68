// Package enginefake serves fake local LLM engines — Ollama, vLLM, LM Studio
// and llama.cpp's llama-server — that answer exactly like the real ones,
// because every answer is a replay of a captured exchange.
//
// The captures are the .http files under fixtures/ (a byte-for-byte copy of
// shared/fixtures/engines, embedded; a test keeps the copies identical). The
// llamacpp/ and ollama/ ones were captured live; the vllm/ and lmstudio/
// ones transcribed from the engines' sources and docs (see their READMEs).
// For each request the fake picks the fixture the real engine's answer
// matches (method, path, stream or not, include_usage, known or unknown
// model, malformed JSON, missing fields...) and sends its status, the
// headers that matter (Content-Type, Server, Connection,
// Access-Control-Allow-Origin, Keep-Alive...), its JSON with the same keys in
// the same order and the same value types, and its SSE / NDJSON framing
// (data: [DONE] included where the engine sends it, and the "event:" lines
// of Anthropic's /v1/messages and OpenAI's /v1/responses streams, which
// llama-server and Ollama speak natively). Model names, context
// lengths and the version are substituted inside a clone of the captured
// JSON, nothing else; untouched bodies are the captured bytes.
//
// Where no capture exists the code says DERIVED and names its source: vLLM's
// /v1/completions, /v1/embeddings and FastAPI 404/405 bodies, LM Studio's
// /v1/completions, completion streams, malformed-JSON and API-token errors,
// a few Ollama error texts (from its server code), Ollama's Anthropic error
// envelope for errors other than an unknown model, llama.cpp's answer to a
// /v1/messages or /v1/responses body without messages or input, llama.cpp
// router answers for endpoints other than chat.
//
// Habits reproduced: llama-server closes the TCP connection after every
// streamed answer although its headers say "Keep-Alive: timeout=5, max=100"
// (a pooling proxy gets a broken request now and then), ignores the
// requested model in single-model mode, and answers malformed JSON with 500;
// Ollama streams unless "stream": false, lists "data": null with no models,
// and /api/tags disagrees with /api/show about embedding capabilities; LM
// Studio answers unknown routes with HTTP 200 and ignores the model name when
// exactly one model is loaded; vLLM's /health is 200 with an empty body.
//
// Usage:
//
//	srv, err := enginefake.Start(enginefake.Options{Kind: enginefake.Ollama,
//		Models: []enginefake.Model{{Name: "org/model:Q4"}, {Name: "e5", Embedding: true}},
//		TTFT: 50 * time.Millisecond, TokensPerSecond: 50})
//	...
//	defer srv.Close()
//	resp, err := http.Get(srv.URL() + "/api/tags")
//	srv.SetFailure(enginefake.FailReset) // and back with FailNone
//
// The command tools/fakeengine runs one from the shell.
package enginefake
