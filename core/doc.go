// Package core is FLM's domain: entities, ports and the services the
// adapters (cli, proxy, engine modules) call. It imports the standard library
// only; a test enforces that.
//
// Module versions are not kept here: `flm version` reads them from the
// build information Go embeds in the binary.
package core

// APIVersion is the version of core's exported API (CORE_API.md): the core
// release that last changed it. The API is frozen at 1.0.0: within major
// version 1 it only grows (a minor release sets APIVersion to its own
// version), and CI compares it with the committed snapshot
// core/api/v1.apidiff (docs/guides/VERSIONING_POLICY.md).
const APIVersion = "1.0.0"
