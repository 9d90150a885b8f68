package engine

// Habits are what a kind of engine does differently on the wire, declared
// by its driver as data. The gateway and the proxy read them instead of
// switching on Kind, so a fifth engine is one new module and no edit
// elsewhere.
type Habits struct {
	// ClosesAfterStream: the engine closes the connection after every
	// streamed response while announcing keep-alive (llama-server); a
	// pooled connection reused after a stream fails, so streams get a
	// connection of their own.
	ClosesAfterStream bool `json:"closes_after_stream,omitempty"`
	// HonoursIncludeUsage: a stream with stream_options.include_usage
	// ends with a usage chunk ("choices":[]).
	HonoursIncludeUsage bool `json:"honours_include_usage,omitempty"`
	// MultipleChoices: "n" > 1 returns n choices (the others silently
	// return one, so FLM refuses n > 1 for them).
	MultipleChoices bool `json:"multiple_choices,omitempty"`
	// LatestTagAlias: a model "name:latest" is also served as "name"
	// (Ollama's implicit tag).
	LatestTagAlias bool `json:"latest_tag_alias,omitempty"`
	// NativeMessages: the engine answers Anthropic's POST /v1/messages
	// itself.
	NativeMessages bool `json:"native_messages,omitempty"`
	// NativeResponses: the engine answers OpenAI's POST /v1/responses
	// itself.
	NativeResponses bool `json:"native_responses,omitempty"`
}
