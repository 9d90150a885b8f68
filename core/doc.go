// Package core is FLM's domain: entities, ports and the services the
// adapters (cli, proxy, engine modules) call. It imports the standard library
// only; a test enforces that.
//
// Module versions are not kept here: `flm version` reads them from the
// build information Go embeds in the binary.
package core

// APIVersion is the version of core's exported API (CORE_API.md). It is
// 0.x until an issue declares the API frozen at 1.0.0.
const APIVersion = "0.1.0"
