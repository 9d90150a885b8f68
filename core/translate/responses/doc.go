// Package responses translates OpenAI's Responses API (POST /v1/responses),
// stateless subset, to Chat Completions and back, for engines that do not
// speak it themselves.
//
// ParseRequest validates the client's body; Request.ChatBody builds the
// engine's body; Request.Response turns a non-streamed answer into a
// Response object; Request.NewStream returns a translate.Stream producing
// the Responses event stream as the official SDKs accumulate it
// (sequence_number, output_index, content_index and item ids consistent):
//
//	response.created, response.in_progress,
//	per output item: response.output_item.added,
//	  message: response.content_part.added, response.output_text.delta …,
//	           response.output_text.done, response.content_part.done
//	  function_call: response.function_call_arguments.delta …,
//	           response.function_call_arguments.done
//	response.output_item.done, then response.completed
//	(response.incomplete when the engine stopped at max_output_tokens)
//
// A broken stream ends with an "error" event that carries both the flat
// fields of the published schema and a nested "error" object (what the
// official SDKs' stream readers turn into an exception).
//
// Decisions (PROXY_SPEC.md has the table):
//
//   - FLM stores no responses: previous_response_id, conversation,
//     background, stored prompts and item_reference inputs are refused with
//     400; store is ignored and every response says "store": false.
//   - input: a string, or messages (roles user, assistant, system,
//     developer → system) with input_text / output_text / refusal /
//     input_image parts, function_call and function_call_output items;
//     reasoning items are dropped (engines cannot use them).
//   - Function tools map to Chat Completions tools; OpenAI's built-in tools
//     (web search, file search, computer use, MCP …) are refused.
//   - A generation cut by max_output_tokens is status "incomplete" with
//     incomplete_details.reason "max_output_tokens", as OpenAI reports it
//     (llama-server and Ollama's own /v1/responses say "completed").
//   - usage is the engine's; null when the engine reported none.
//     temperature and top_p echo the request (null when not sent: the
//     engine's defaults are not known).
//   - The engine's reasoning text is not returned (no reasoning items).
package responses
