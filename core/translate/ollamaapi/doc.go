// Package ollamaapi is FLM's Ollama-API facade: it translates Ollama's own
// API (/api/chat, /api/generate, /api/embed, /api/embeddings) to OpenAI's
// Chat Completions, Completions and Embeddings for any engine, turns the
// answers back into Ollama's shapes (NDJSON streams included), and builds
// /api/tags, /api/show and /api/version from FLM's model catalog.
//
// Decisions (PROXY_SPEC.md has the table):
//
//   - stream defaults to true on /api/chat and /api/generate, as in Ollama.
//     A stream is NDJSON: one line per content delta ("done":false), tool
//     calls in one line when complete (Ollama sends whole calls with object
//     arguments), then the final "done":true line.
//   - Final-line numbers are never invented: prompt_eval_count and
//     eval_count are the engine's usage (left out when it reported none);
//     total_duration is measured by FLM from the request's arrival;
//     prompt_eval_duration and eval_duration are llama-server's own timings
//     when present, else (streams) FLM's measurement: time to the first
//     token, and first to last token; load_duration and context are left
//     out (FLM does not know them; Ollama leaves out zero values too).
//   - /api/generate without raw goes to the chat endpoint (the engine
//     applies its chat template, as Ollama does), with system as a system
//     message; raw goes to /v1/completions. template, context and suffix
//     cannot be honoured and are refused with 400.
//   - options: temperature, top_p, top_k, min_p, num_predict (max_tokens;
//     negative means no limit), stop, seed, frequency_penalty,
//     presence_penalty are mapped; runner options (num_ctx, num_gpu …) and
//     the others are ignored, as Ollama ignores options it does not know.
//     keep_alive and truncate are ignored: the engine manages its models.
//   - format "json" → response_format json_object; a JSON schema →
//     response_format json_schema named "response".
//   - think: thinking text is returned when the engine gives reasoning
//     content, unless the client set think:false.
//   - An empty prompt / no messages is Ollama's "load the model" call:
//     answered by FLM with done_reason "load" without calling the engine
//     (engines load on first use). The "unload" call (keep_alive 0) is
//     refused: FLM cannot unload an engine's model.
//   - /api/tags names: a model's bare name when exactly one model in the
//     catalog has it (Ollama models keep their name:tag; "x" and
//     "x:latest" count as one name, since FLM routes a bare "x" to an
//     Ollama "x:latest"), else its flm:// id, so every listed name routes
//     back to the same model. size 0,
//     modified_at the zero time (unknown), digest the SHA-256 of the
//     flm:// id (a stable identifier; FLM has no model files),
//     capabilities from the model's capabilities.
//   - Errors are {"error":"…"} with the HTTP status; a stream that breaks
//     ends with an {"error":"…"} line.
package ollamaapi
