// Package lmstudio is FLM's adapter for LM Studio: detection by fingerprint,
// health, model listing and the request rules the proxy applies to it.
//
// It implements core's engine ports and imports only core and the standard
// library.
package lmstudio

// Version is the version of this engine module.
const Version = "0.1.0"
