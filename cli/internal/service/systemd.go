package service

import (
	"strings"

	"github.com/unjuno/flm/core/flmerr"
)

// unitMarker starts every unit flm writes, and dropInMarker every drop-in:
// uninstall removes only files that carry them.
const (
	unitMarker   = "# flm: secure gateway for local LLM engines, written by `flm service install`"
	dropInMarker = "# Written by `flm service install --system`; removed by `flm service uninstall`."
)

// systemdHeader heads the rendered units. The system unit rendered for the
// default profile is packaging/systemd/flm.service byte for byte (a test
// compares them), so the .deb/.rpm and `flm service install --system` run
// the same thing. No Documentation=man:flm(1): `systemd-analyze verify`
// fails on it wherever the man page is not installed (a tarball install).
func systemdHeader(s Scope) string {
	edit, env := "systemctl edit flm", "/etc/flm/service.env"
	if s == ScopeUser {
		edit, env = "systemctl --user edit flm", "~/.config/flm/service.env"
	}
	return unitMarker + "\n" +
		"# (the .deb/.rpm ship the default system unit as /usr/lib/systemd/system/flm.service).\n" +
		"# Change settings with `flm service uninstall` then `flm service install <flags>`,\n" +
		"# or `" + edit + "`. Secrets (SOCKS5 or DNS provider credentials) go in\n" +
		"# " + env + " (mode 0600), never in this file.\n"
}

// systemdHardening sandboxes the system unit. Measured needs of the proxy:
// it binds TCP ports (CAP_NET_BIND_SERVICE only for ports < 1024), reaches
// engines on loopback and the LAN (no IP restrictions), lists interfaces for
// its LAN URL (AF_NETLINK) and writes only its data dir. Not set on purpose:
// MemoryDenyWriteExecute (the SQLite driver runs WebAssembly compiled to
// native code at run time, which needs W^X mappings), SystemCallFilter and
// PrivateNetwork.
const systemdHardening = `UMask=0077
NoNewPrivileges=yes
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
AmbientCapabilities=CAP_NET_BIND_SERVICE
ProtectSystem=strict
ReadWritePaths=%s
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
`

// checkSystemdExecutable refuses a binary path systemd will not run: it
// rejects the whole unit ("Executable name contains special characters")
// when the path holds a quote or a backslash, however it is escaped.
func checkSystemdExecutable(exe string) error {
	if strings.ContainsAny(exe, `"'\`) {
		return flmerr.New(flmerr.InvalidArgument, "systemd does not run a program whose path holds a quote or a backslash (%s): move flm to a plain path such as /usr/local/bin/flm and install again", exe)
	}
	return nil
}

// SystemdUnit renders the unit file for p (systemd; user or system scope).
func SystemdUnit(p Profile) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	return systemdUnit(p)
}

// systemdUnit renders the unit of a profile already validated.
func systemdUnit(p Profile) (string, error) {
	if err := checkSystemdExecutable(p.Executable); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(systemdHeader(p.Scope))
	b.WriteString("[Unit]\n")
	if p.Scope == ScopeSystem {
		b.WriteString("Description=FLM secure gateway for local LLM engines\n")
	} else {
		b.WriteString("Description=FLM secure gateway for local LLM engines (user service)\n")
	}
	if p.Scope == ScopeSystem {
		// A user manager cannot order itself after system targets.
		b.WriteString("After=network-online.target\nWants=network-online.target\n")
	}
	b.WriteString("\n[Service]\nType=simple\n")
	if p.Scope == ScopeSystem {
		b.WriteString("User=" + SystemUser + "\nGroup=" + SystemUser + "\n")
	}
	b.WriteString(environmentLine(p.EnvList()))
	if p.Scope == ScopeSystem {
		b.WriteString("EnvironmentFile=-/etc/flm/service.env\n")
	} else {
		b.WriteString("EnvironmentFile=-%E/flm/service.env\n")
	}
	b.WriteString("ExecStart=" + execLine(p.Executable, p.Arguments(PlatformSystemd)) + "\n")
	b.WriteString("ExecReload=/bin/kill -HUP $MAINPID\n")
	b.WriteString("Restart=on-failure\nRestartSec=5s\n")
	if p.Scope == ScopeSystem {
		b.WriteString(strings.Replace(systemdHardening, "%s", systemdQuote(p.DataDir), 1))
	} else {
		b.WriteString("UMask=0077\nNoNewPrivileges=yes\n")
	}
	b.WriteString("\n[Install]\n")
	if p.Scope == ScopeSystem {
		b.WriteString("WantedBy=multi-user.target\n")
	} else {
		b.WriteString("WantedBy=default.target\n")
	}
	return b.String(), nil
}

// SystemdDropIn renders the drop-in that applies p over the packaged unit
// (a system install when /usr/lib/systemd/system/flm.service exists). It is
// "" when p is the packaged unit's own profile: nothing to override.
func SystemdDropIn(p Profile) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	def := p
	def.Executable, def.Proxy, def.DataDir, def.KeySource, def.Env = PackagedExecutable, ProxyFlags{}, SystemDataDir, "file", nil
	mine, err := systemdUnit(p)
	if err != nil {
		return "", err
	}
	packaged, _ := systemdUnit(def)
	if mine == packaged {
		return "", nil
	}
	var b strings.Builder
	b.WriteString(dropInMarker + "\n")
	b.WriteString("# The profile given to `flm service install`, over the packaged flm.service.\n")
	b.WriteString("[Service]\n")
	b.WriteString("Environment=\n" + environmentLine(p.EnvList()))
	b.WriteString("ExecStart=\nExecStart=" + execLine(p.Executable, p.Arguments(PlatformSystemd)) + "\n")
	if p.DataDir != SystemDataDir {
		b.WriteString("ReadWritePaths=" + systemdQuote(p.DataDir) + "\n")
	}
	return b.String(), nil
}

func environmentLine(env [][2]string) string {
	words := make([]string, len(env))
	for i, kv := range env {
		words[i] = systemdQuote(kv[0] + "=" + kv[1])
	}
	return "Environment=" + strings.Join(words, " ") + "\n"
}

func execLine(exe string, args []string) string {
	// systemd executes the first word as it is; only the arguments undergo
	// environment variable expansion, where "$$" is a literal "$".
	words := []string{systemdQuote(exe)}
	for _, a := range args {
		words = append(words, strings.ReplaceAll(systemdQuote(a), "$", "$$"))
	}
	return strings.Join(words, " ")
}

// systemdQuote makes s one word of a unit setting: "%" escaped (unit
// specifiers), and double quotes around anything but plain characters.
func systemdQuote(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	plain := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_@%+=:,./-", r))
	}) < 0
	if plain {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
