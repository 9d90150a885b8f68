package service

import "github.com/unjuno/flm/core/flmerr"

// The stable codes of `flm service` (all user errors: exit status 1). They
// live here rather than in core/flmerr because only the CLI emits them.
const (
	// CodeUnsupported: the OS's init system is not one flm installs into
	// (no systemd as PID 1, upstart, OpenRC, SysV …), or the scope is not
	// available there (a user service on Windows).
	CodeUnsupported flmerr.Code = "SERVICE_UNSUPPORTED"
	// CodeNotInstalled: uninstall, start or stop of a service that is not
	// installed.
	CodeNotInstalled flmerr.Code = "SERVICE_NOT_INSTALLED"
	// CodeAlreadyInstalled: install over an existing installation.
	CodeAlreadyInstalled flmerr.Code = "SERVICE_ALREADY_INSTALLED"
	// CodeFailed: the service manager refused or failed an operation.
	CodeFailed flmerr.Code = "SERVICE_FAILED"
)
