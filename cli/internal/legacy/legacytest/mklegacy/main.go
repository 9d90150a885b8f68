// Command mklegacy writes a prototype flm.db (legacytest.Standard) for
// trying `flm migrate legacy` by hand:
//
//	go run ./cli/internal/legacy/legacytest/mklegacy --out /tmp/old [--key-file]
//
// It prints the plaintext keys it generated (they are test keys), so that
// a migrated key can be tried against the proxy.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/unjuno/flm/cli/internal/legacy/legacytest"
)

func main() {
	out := flag.String("out", "", "directory to write flm.db into (created)")
	keyFile := flag.Bool("key-file", false, "also write the AES key as encryption_key.bin (keys can then be decrypted and verified)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "mklegacy: --out DIR is required")
		os.Exit(2)
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "mklegacy:", err)
		os.Exit(1)
	}
	f, err := legacytest.Build(*out, legacytest.Standard())
	if err == nil && *keyFile {
		err = f.WriteKeyFile()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mklegacy:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{"path": f.Path, "keys": f.Keys})
}
