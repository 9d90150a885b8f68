// Package capture is the translators' test kit: it reads the real engine
// captures under translate/testdata/captures, splits SSE and NDJSON
// streams, compares JSON shapes (key sets and value types) with the
// engines' native answers, and manages golden files. Test-only; stdlib-only
// like the rest of core.
package capture
