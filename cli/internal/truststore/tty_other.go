//go:build !linux && !windows && !darwin && !freebsd && !netbsd && !openbsd && !dragonfly

package truststore

import "os"

// IsTerminal is false where FLM cannot tell: pass --yes.
func IsTerminal(*os.File) bool { return false }
