// Package anthropic translates Anthropic's Messages API (POST /v1/messages)
// to OpenAI's Chat Completions and back, for engines that do not speak it
// themselves.
//
// Request: ParseRequest validates the client's body; Request.ChatBody builds
// the engine's Chat Completions body for a translate.Target. Answer:
// Request.Message turns a non-streamed Chat Completions answer into an
// Anthropic message; Request.NewStream returns a translate.Stream that turns
// the engine's chunk stream into Anthropic's events, in Anthropic's order and
// framing (event: + data: lines):
//
//	message_start, then per content block content_block_start,
//	content_block_delta (text_delta / input_json_delta / thinking_delta) …,
//	content_block_stop, then message_delta (stop_reason, usage), message_stop
//
// A broken stream ends with an "error" event. ErrorBody renders any failure
// in Anthropic's error shape.
//
// Decisions (PROXY_SPEC.md has the table):
//
//   - max_tokens may be omitted (Anthropic requires it; llama-server and
//     Ollama, which answer /v1/messages themselves, do not): the engine's
//     default then applies, as it would on the native path.
//   - usage is the engine's: input_tokens = prompt tokens minus cached ones,
//     cache_read_input_tokens = cached ones when the engine reports them,
//     output_tokens = completion tokens. Anthropic's schema requires numbers,
//     so an engine that reports no usage gives 0s. In a stream,
//     message_start carries 0s (the count comes last on the OpenAI side) and
//     message_delta the real counts; the official SDKs take both from there.
//   - stop_reason: stop → end_turn, length → max_tokens, tool_calls (or stop
//     with tool calls) → tool_use, content_filter → refusal; stop_sequence
//     when the engine names the stop string that matched (vLLM).
//   - No ping events: neither native implementation sends them and the
//     SDKs do not need them.
//   - thinking blocks are returned only when the request enabled thinking
//     (signature ""), from the engine's reasoning_content; thinking blocks in
//     the history are dropped (the engine cannot check their signatures).
//   - metadata, cache_control, citations settings, service_tier are ignored;
//     documents, server tools, MCP servers, containers and images inside
//     tool results are refused with 400.
package anthropic
