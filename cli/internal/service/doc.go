// Package service installs flm as an OS service: a systemd unit (user or
// system), a launchd agent or daemon, or a Windows service, all through
// github.com/kardianos/service.
//
// The service runs the proxy in the foreground with the profile recorded at
// install time (the `flm proxy start` flags given to `flm service install`).
// Under systemd the unit runs `flm proxy start --foreground` itself and its
// stdout/stderr go to the journal; under launchd and the Windows service
// manager it runs the hidden `flm service run`, which speaks the service
// manager's protocol and logs to the OS log.
//
// Only linux-systemd, darwin-launchd and windows-service are accepted.
// kardianos/service falls back to SysV init scripts (unix-systemv) when
// systemd is not PID 1 and would silently write /etc/init.d/flm; Check
// refuses that, and every other init system, with SERVICE_UNSUPPORTED.
//
// Security notes: a unit file and a launchd plist are readable by every
// user, so nothing secret is ever recorded in them (no FLM_DB_KEY, no SOCKS5
// or DNS provider credentials); those go in the optional environment file
// the systemd unit reads (EnvFile). The system unit runs as the unprivileged
// `flm` user with a hardened sandbox; its only capability is binding ports
// below 1024.
package service
