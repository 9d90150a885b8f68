//go:build linux

package truststore

import (
	"os"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether f is an interactive terminal, where a consent
// prompt can be answered (/dev/null and pipes are not).
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
