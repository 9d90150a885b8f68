package firewall

import (
	"os"
	"runtime"
)

// Privileged reports whether this process may change the firewall: root on
// Linux and macOS. On Windows it reports false: the UI shows the commands
// for an elevated PowerShell instead of judging the token's elevation.
func Privileged() bool {
	if runtime.GOOS == "windows" {
		return false
	}
	return os.Geteuid() == 0
}
