//go:build windows

package truststore

import (
	"os"

	"golang.org/x/sys/windows"
)

// IsTerminal reports whether f is an interactive console, where a consent
// prompt can be answered.
func IsTerminal(f *os.File) bool {
	var mode uint32
	return windows.GetConsoleMode(windows.Handle(f.Fd()), &mode) == nil
}
