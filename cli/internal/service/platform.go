package service

import (
	"os"
	"strings"

	"github.com/unjuno/flm/core/flmerr"
)

// Check refuses every platform but systemd, launchd and the Windows service
// manager, and a user service on Windows. platform is kardianos' System name
// (service.ChosenSystem().String(); "" when it found none); pid1 names the
// init process (InitName) for the message.
func Check(platform string, scope Scope, pid1 string) error {
	switch platform {
	case PlatformSystemd, PlatformLaunchd:
		return nil
	case PlatformWindows:
		if scope == ScopeUser {
			return flmerr.New(CodeUnsupported, "Windows has no per-user services: install the Windows service with `flm service install --system` from an Administrator prompt")
		}
		return nil
	}
	found := platform
	if found == "" {
		found = "none"
	}
	init := ""
	if pid1 != "" {
		init = " (PID 1 is " + pid1 + ")"
	}
	return flmerr.New(CodeUnsupported, "flm installs services only under systemd, launchd or the Windows service manager, and systemd is not running here%s; the service system found is %s, which flm does not use. Run `flm proxy start --foreground` under your init system instead (docs/guides/SERVICE_GUIDE.md)", init, found)
}

// InitName is the name of PID 1 on Linux ("" elsewhere or when unreadable).
func InitName() string {
	b, err := os.ReadFile("/proc/1/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
