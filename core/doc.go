// Package core is FLM's domain: entities, ports and the services the
// adapters (cli, proxy, engine modules) call. It imports the standard library
// only; a test enforces that.
package core

// Version is the version of the core module.
const Version = "0.1.0"

// APIVersion is the version of core's exported API (CORE_API.md). It is
// 0.x until an issue declares the API frozen at 1.0.0.
const APIVersion = "0.1.0"
