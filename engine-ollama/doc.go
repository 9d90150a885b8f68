// Package ollama is FLM's adapter for Ollama: detection by fingerprint,
// health, model listing, and the engine's habits (engine.Habits) that the
// gateway and the proxy read instead of switching on its kind.
//
// It implements core's engine ports and imports only core and the standard
// library.
package ollama
