package service

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"

	kservice "github.com/kardianos/service"

	"github.com/unjuno/flm/core/flmerr"
)

// The states `flm service status` reports.
const (
	StateNotInstalled = "not_installed"
	StateStopped      = "stopped"
	StateRunning      = "running"
	// StateFailed: systemd gave up or the unit's last run failed
	// (systemctl is-active says "failed").
	StateFailed = "failed"
)

// Report describes a service after an operation.
type Report struct {
	Name     string `json:"name"`
	Scope    Scope  `json:"scope"`
	Platform string `json:"platform"`
	// State is set by Status only.
	State string `json:"state,omitempty"`
	// File is the unit file or plist ("" for a Windows service).
	File string `json:"file,omitempty"`
	// Packaged: the system unit is the one the .deb/.rpm installed; flm only
	// enabled it (and wrote DropIn, when the profile differs from its).
	Packaged bool   `json:"packaged,omitempty"`
	DropIn   string `json:"drop_in,omitempty"`
	// Command and Env are what the service runs (install only).
	Command []string          `json:"command,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	// Logs says where the service's logs are.
	Logs string `json:"logs,omitempty"`
}

// Manager installs and controls the flm service through kardianos/service.
// The zero value works on the real system; tests replace the fields.
type Manager struct {
	// System is the service system (nil: the one kardianos chose).
	System kservice.System
	// Linux locations (empty: the real ones).
	EtcDir       string   // /etc/systemd/system
	PackagedDirs []string // /usr/lib/systemd/system, /lib/systemd/system
	HomeDir      string   // the user's home (os.UserHomeDir)
	// Run runs a command and returns its combined output (nil: exec).
	Run func(name string, args ...string) (string, error)
	// Geteuid is os.Geteuid (tests replace it).
	Geteuid func() int
	// Getenv reads the environment (nil: os.Getenv).
	Getenv func(string) string
	// LookupUser is user.Lookup (tests replace it).
	LookupUser func(string) (*user.User, error)
	// LookupGroup is user.LookupGroup (tests replace it).
	LookupGroup func(string) (*user.Group, error)
	// PasswdFile is /etc/passwd (tests replace it).
	PasswdFile string
}

// Check refuses the platform (SERVICE_UNSUPPORTED) before anything else is
// done for scope.
func (m *Manager) Check(scope Scope) error {
	return Check(m.Platform(), scope, InitName())
}

// CheckUserHome refuses to change a user service as root when the home
// directory is not root's (`sudo -E`, `su` without `-`): root would create
// files and follow symlinks in a directory another user controls. It runs
// before the data dir is created.
func (m *Manager) CheckUserHome(scope Scope) error {
	if scope != ScopeUser || m.euid() != 0 {
		return nil
	}
	h, err := m.home()
	if err != nil {
		return err
	}
	if err := checkTrustedPath("the home directory", h); err != nil {
		return flmerr.New(flmerr.InvalidArgument, "as root, a user service would be written into %s, which is not root's (HOME is another user's: sudo -E or su without -). Run `flm service …` as that user from a login session, or install the system service with `sudo flm service install --system`", h)
	}
	return nil
}

// Platform is the name of the service system in use ("" when none).
func (m *Manager) Platform() string {
	s := m.sys()
	if s == nil {
		return ""
	}
	return s.String()
}

func (m *Manager) sys() kservice.System {
	if m.System != nil {
		return m.System
	}
	return kservice.ChosenSystem()
}

func (m *Manager) run(name string, args ...string) (string, error) {
	if m.Run != nil {
		return m.Run(name, args...)
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (m *Manager) getenv(k string) string {
	if m.Getenv != nil {
		return m.Getenv(k)
	}
	return os.Getenv(k)
}

func (m *Manager) euid() int {
	if m.Geteuid != nil {
		return m.Geteuid()
	}
	return os.Geteuid()
}

func (m *Manager) etcDir() string {
	if m.EtcDir != "" {
		return m.EtcDir
	}
	return "/etc/systemd/system"
}

func (m *Manager) packagedDirs() []string {
	if m.PackagedDirs != nil {
		return m.PackagedDirs
	}
	return []string{"/usr/lib/systemd/system", "/lib/systemd/system"}
}

func (m *Manager) home() (string, error) {
	if m.HomeDir != "" {
		return m.HomeDir, nil
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return "", flmerr.Wrap(err, flmerr.IOError, "find the home directory for the user service")
	}
	return h, nil
}

// Config is the kardianos configuration for p on platform.
func Config(p Profile, platform string) (*kservice.Config, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := &kservice.Config{
		Name:        p.Name,
		DisplayName: "FLM",
		Description: "FLM secure gateway for local LLM engines",
		Executable:  p.Executable,
		Arguments:   p.Arguments(platform),
	}
	user := p.Scope == ScopeUser
	switch platform {
	case PlatformSystemd:
		unit, err := systemdUnit(p)
		if err != nil {
			return nil, err
		}
		// The unit carries the environment, user and restart policy itself;
		// kardianos writes it as is (it holds no template action).
		c.Option = kservice.KeyValue{"UserService": user, "SystemdScript": unit, "Restart": "on-failure"}
		if !user {
			c.UserName = SystemUser
		}
	case PlatformLaunchd:
		// KeepAlive restarts the job whenever it exits (launchd has no
		// on-failure policy in kardianos' plist); launchd throttles restarts
		// to one per 10 s. stdout/stderr only catch crashes: `service run`
		// logs to the OS log and the access log goes to logs/.
		c.EnvVars = p.EnvMap()
		c.Option = kservice.KeyValue{"UserService": user, "KeepAlive": true, "RunAtLoad": true,
			"LogDirectory": filepath.Join(p.DataDir, "logs")}
	case PlatformWindows:
		if err := checkWindowsCommandLine(p.Executable, c.Arguments); err != nil {
			return nil, err
		}
		c.EnvVars = p.EnvMap()
		c.Option = kservice.KeyValue{"StartType": "automatic", "DelayedAutoStart": true,
			"OnFailure": "restart", "OnFailureDelayDuration": "5s", "OnFailureResetPeriod": 86400}
	default:
		return nil, Check(platform, p.Scope, InitName())
	}
	return c, nil
}

// File is where p's service definition lives on platform, and whether it is
// the packaged unit (systemd system scope only). "" on Windows.
func (m *Manager) File(p Profile, platform string) (file string, packaged bool, err error) {
	switch platform {
	case PlatformSystemd:
		if p.Scope == ScopeUser {
			h, err := m.home()
			if err != nil {
				return "", false, err
			}
			return filepath.Join(h, ".config", "systemd", "user", p.Name+".service"), false, nil
		}
		etc := filepath.Join(m.etcDir(), p.Name+".service")
		if exists(etc) {
			return etc, false, nil
		}
		for _, d := range m.packagedDirs() {
			if f := filepath.Join(d, p.Name+".service"); exists(f) {
				return f, true, nil
			}
		}
		return etc, false, nil
	case PlatformLaunchd:
		if p.Scope == ScopeUser {
			h, err := m.home()
			if err != nil {
				return "", false, err
			}
			return filepath.Join(h, "Library", "LaunchAgents", p.Name+".plist"), false, nil
		}
		return filepath.Join("/Library/LaunchDaemons", p.Name+".plist"), false, nil
	}
	return "", false, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (m *Manager) dropInPath(p Profile) string {
	return filepath.Join(m.etcDir(), p.Name+".service.d", "flm-profile.conf")
}

// Logs says where the service's logs go.
func Logs(p Profile, platform string) string {
	switch platform {
	case PlatformSystemd:
		if p.Scope == ScopeUser {
			return "journalctl --user -u " + p.Name
		}
		return "journalctl -u " + p.Name
	case PlatformLaunchd:
		return fmt.Sprintf("log show --last 1h --predicate 'process == \"flm\"'; access log: %s", filepath.Join(p.DataDir, "logs"))
	case PlatformWindows:
		return fmt.Sprintf("Event Viewer, Windows Logs > Application, source %s; access log: %s", p.Name, filepath.Join(p.DataDir, "logs"))
	}
	return ""
}

type noProgram struct{}

func (noProgram) Start(kservice.Service) error { return nil }
func (noProgram) Stop(kservice.Service) error  { return nil }

// prepare checks the platform and the privileges an operation needs and
// builds the kardianos service.
func (m *Manager) prepare(p Profile, needPrivilege bool) (kservice.Service, string, error) {
	platform := m.Platform()
	if err := Check(platform, p.Scope, InitName()); err != nil {
		return nil, platform, err
	}
	if needPrivilege && p.Scope == ScopeSystem && platform != PlatformWindows && m.euid() != 0 {
		return nil, platform, flmerr.New(flmerr.InvalidArgument, "the system service needs root: run `sudo flm service …`, or use the user service (--user)")
	}
	if needPrivilege {
		if err := m.CheckUserHome(p.Scope); err != nil {
			return nil, platform, err
		}
		if err := m.userBus(p, platform); err != nil {
			return nil, platform, err
		}
	}
	c, err := Config(p, platform)
	if err != nil {
		return nil, platform, err
	}
	s, err := m.sys().New(noProgram{}, c)
	if err != nil {
		return nil, platform, flmerr.Wrap(err, CodeFailed, "set up the %s service", platform)
	}
	return s, platform, nil
}

// userBus checks that systemctl --user can reach the user's manager, so
// that an operation fails before it changes anything.
func (m *Manager) userBus(p Profile, platform string) error {
	if platform != PlatformSystemd || p.Scope != ScopeUser {
		return nil
	}
	if rt := m.getenv("XDG_RUNTIME_DIR"); rt == "" || !exists(filepath.Join(rt, "bus")) {
		return flmerr.New(CodeFailed, "systemctl --user cannot reach your user manager ($XDG_RUNTIME_DIR/bus is missing): run flm from a login session (ssh or a desktop, not `su`), or install the system service with `sudo flm service install --system`")
	}
	return nil
}

func (m *Manager) report(p Profile, platform string) Report {
	r := Report{Name: p.Name, Scope: p.Scope, Platform: platform, Logs: Logs(p, platform)}
	r.File, r.Packaged, _ = m.File(p, platform)
	if r.Packaged {
		r.DropIn = m.dropInPath(p)
		if !exists(r.DropIn) {
			r.DropIn = ""
		}
	}
	return r
}

func (m *Manager) failed(err error, p Profile, platform, what string) error {
	hint := ""
	switch platform {
	case PlatformSystemd:
		user := ""
		if p.Scope == ScopeUser {
			user = "--user "
		}
		hint = fmt.Sprintf(" (see `systemctl %sstatus %s` and `journalctl %s-u %s`)", user, p.Name, user, p.Name)
	case PlatformWindows:
		hint = " (run it from an Administrator prompt; see the Application event log)"
	}
	return flmerr.Wrap(err, CodeFailed, "%s the %s service%s", what, p.Scope, hint)
}

// installed reports whether p's service exists.
func (m *Manager) installed(s kservice.Service, p Profile, platform string) (bool, error) {
	file, packaged, err := m.File(p, platform)
	if err != nil {
		return false, err
	}
	if platform == PlatformSystemd && packaged {
		// The package installed the unit; it is flm's service once enabled.
		if exists(m.dropInPath(p)) {
			return true, nil
		}
		out, _ := m.run("systemctl", "is-enabled", p.Name+".service")
		return strings.TrimSpace(out) == "enabled", nil
	}
	if file != "" {
		return exists(file), nil
	}
	_, err = s.Status()
	if errors.Is(err, kservice.ErrNotInstalled) {
		return false, nil
	}
	return err == nil, err
}

// Install installs p (without starting it).
func (m *Manager) Install(p Profile) (Report, error) {
	s, platform, err := m.prepare(p, true)
	if err != nil {
		return Report{}, err
	}
	ok, err := m.installed(s, p, platform)
	if err != nil {
		return Report{}, m.failed(err, p, platform, "query")
	}
	if ok {
		file, packaged, _ := m.File(p, platform)
		if file != "" && !packaged && !writtenByFlm(platform, file) {
			return Report{}, flmerr.New(CodeAlreadyInstalled, "%s exists and was not written by `flm service install` (another program's service, your own unit, or a masked unit): flm leaves it alone. Remove it yourself if it is not needed, then install again", file)
		}
		where := ""
		if file != "" {
			where = " (" + file + ")"
		}
		return Report{}, flmerr.New(CodeAlreadyInstalled, "the %s service is already installed%s; to change its settings run `flm service uninstall`, then `flm service install` with the new flags", p.Scope, where)
	}
	if platform == PlatformSystemd && p.Scope == ScopeSystem {
		if err := m.prepareSystemUser(p); err != nil {
			return Report{}, err
		}
	}
	if platform == PlatformLaunchd && p.Scope == ScopeSystem {
		// The LaunchDaemon runs as root.
		if err := checkTrustedPath("the flm binary", p.Executable); err != nil {
			return Report{}, err
		}
	}
	if _, packaged, _ := m.File(p, platform); packaged {
		err = m.enablePackaged(p)
	} else {
		err = m.installFile(s, p, platform)
	}
	if err != nil {
		return Report{}, err
	}
	r := m.report(p, platform)
	r.Command = append([]string{p.Executable}, p.Arguments(platform)...)
	r.Env = p.EnvMap()
	return r, nil
}

// installFile has kardianos write the service definition; a failure after
// the file was written (systemctl enable or daemon-reload) removes it again.
func (m *Manager) installFile(s kservice.Service, p Profile, platform string) error {
	file, _, err := m.File(p, platform)
	if err != nil {
		return err
	}
	if err := s.Install(); err != nil {
		if file != "" && exists(file) {
			if platform == PlatformSystemd {
				_, _ = m.run("systemctl", systemctlArgs(p, "disable", p.Name+".service")...)
			}
			_ = os.Remove(file)
		}
		return m.failed(err, p, platform, "install")
	}
	return nil
}

func systemctlArgs(p Profile, args ...string) []string {
	if p.Scope == ScopeUser {
		return append([]string{"--user"}, args...)
	}
	return args
}

// enablePackaged enables the unit the .deb/.rpm installed, with a drop-in
// for a profile that differs from the packaged one. No second unit is
// written: one under /etc would shadow the packaged file for good.
func (m *Manager) enablePackaged(p Profile) error {
	dropIn, err := SystemdDropIn(p)
	if err != nil {
		return err
	}
	path := m.dropInPath(p)
	if dropIn != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return flmerr.Wrap(err, flmerr.IOError, "create %s", filepath.Dir(path))
		}
		if err := os.WriteFile(path, []byte(dropIn), 0o644); err != nil {
			return flmerr.Wrap(err, flmerr.IOError, "write %s", path)
		}
	}
	undo := func() {
		if dropIn != "" {
			_ = os.Remove(path)
			_ = os.Remove(filepath.Dir(path))
		}
	}
	if out, err := m.run("systemctl", "enable", p.Name+".service"); err != nil {
		undo()
		return m.failed(fmt.Errorf("systemctl enable: %w: %s", err, out), p, PlatformSystemd, "enable")
	}
	if out, err := m.run("systemctl", "daemon-reload"); err != nil {
		_, _ = m.run("systemctl", "disable", p.Name+".service")
		undo()
		return m.failed(fmt.Errorf("systemctl daemon-reload: %w: %s", err, out), p, PlatformSystemd, "enable")
	}
	return nil
}

// Uninstall stops p and removes it. The packaged unit is only disabled (the
// package owns it; `dpkg -r`/`rpm -e` remove it); flm's drop-in is removed.
// The data dir and the system user stay.
func (m *Manager) Uninstall(p Profile) (Report, error) {
	s, platform, err := m.mustBeInstalled(p, "")
	if err != nil {
		return Report{}, err
	}
	r := m.report(p, platform)
	if platform == PlatformSystemd && r.Packaged {
		if r.DropIn != "" && !writtenByFlm(PlatformSystemd, r.DropIn) {
			return Report{}, flmerr.New(CodeFailed, "%s was not written by `flm service install`: flm leaves it alone (remove it yourself if it is not needed)", r.DropIn)
		}
		if out, err := m.run("systemctl", "disable", "--now", p.Name+".service"); err != nil {
			return Report{}, m.failed(fmt.Errorf("systemctl disable: %w: %s", err, out), p, platform, "disable")
		}
		if r.DropIn != "" {
			if err := os.Remove(r.DropIn); err != nil {
				return Report{}, flmerr.Wrap(err, flmerr.IOError, "remove %s", r.DropIn)
			}
			_ = os.Remove(filepath.Dir(r.DropIn))
		}
		if out, err := m.run("systemctl", "daemon-reload"); err != nil {
			return Report{}, m.failed(fmt.Errorf("systemctl daemon-reload: %w: %s", err, out), p, platform, "uninstall")
		}
		return r, nil
	}
	if r.File != "" && !writtenByFlm(platform, r.File) {
		return Report{}, flmerr.New(CodeFailed, "%s was not written by `flm service install` (another program's service, your own unit, or a masked unit): flm leaves it alone. Remove it yourself if it is not needed", r.File)
	}
	// kardianos' systemd Uninstall does not stop the unit first.
	if st, err := s.Status(); err == nil && st == kservice.StatusRunning {
		if err := s.Stop(); err != nil {
			return Report{}, m.failed(err, p, platform, "stop")
		}
	}
	if err := s.Uninstall(); err != nil {
		return Report{}, m.failed(err, p, platform, "uninstall")
	}
	return r, nil
}

// mustBeInstalled prepares p's service and fails with CodeNotInstalled
// (its message ending in hint) when it is not installed.
func (m *Manager) mustBeInstalled(p Profile, hint string) (kservice.Service, string, error) {
	s, platform, err := m.prepare(p, true)
	if err != nil {
		return nil, "", err
	}
	ok, err := m.installed(s, p, platform)
	if err != nil {
		return nil, "", m.failed(err, p, platform, "query")
	}
	if !ok {
		return nil, "", flmerr.New(CodeNotInstalled, "the %s service is not installed%s", p.Scope, hint)
	}
	return s, platform, nil
}

// Start starts the installed service.
func (m *Manager) Start(p Profile) (Report, error) { return m.control(p, "start") }

// Stop stops the installed service (a stopped one stays stopped).
func (m *Manager) Stop(p Profile) (Report, error) { return m.control(p, "stop") }

func (m *Manager) control(p Profile, what string) (Report, error) {
	s, platform, err := m.mustBeInstalled(p, ": run `flm service install` first")
	if err != nil {
		return Report{}, err
	}
	if what == "start" {
		err = s.Start()
	} else {
		err = s.Stop()
	}
	if err != nil {
		return Report{}, m.failed(err, p, platform, what)
	}
	return m.report(p, platform), nil
}

// Status reports p's state: not_installed, stopped, running or failed.
func (m *Manager) Status(p Profile) (Report, error) {
	s, platform, err := m.prepare(p, false)
	if err != nil {
		return Report{}, err
	}
	r := m.report(p, platform)
	ok, err := m.installed(s, p, platform)
	if err != nil {
		return Report{}, m.failed(err, p, platform, "query")
	}
	if !ok {
		r.State, r.File, r.DropIn, r.Packaged = StateNotInstalled, "", "", false
		return r, nil
	}
	if err := m.userBus(p, platform); err != nil {
		return Report{}, err
	}
	st, err := s.Status()
	if platform == PlatformSystemd && errors.Is(err, kservice.ErrNotInstalled) {
		// systemctl is-active printed nothing it knows: systemd did not
		// answer (it says "inactive" for a unit it has not loaded).
		return Report{}, m.failed(errors.New("systemctl is-active gave no state (is systemd running?)"), p, platform, "query")
	}
	if platform == PlatformSystemd && err == nil && st == kservice.StatusRunning {
		// kardianos counts "activating" as running, and so is a unit that
		// crashed and waits to be restarted (SubState auto-restart).
		out, qerr := m.run("systemctl", systemctlArgs(p, "show", "--property=SubState", "--value", p.Name+".service")...)
		if qerr == nil && strings.TrimSpace(out) == "auto-restart" {
			r.State = StateFailed
			return r, nil
		}
	}
	switch {
	case err == nil && st == kservice.StatusRunning:
		r.State = StateRunning
	case err == nil && st == kservice.StatusStopped, errors.Is(err, kservice.ErrNotInstalled):
		// The file exists but the manager has not loaded it (a launchd agent
		// that was never loaded): installed, not running.
		r.State = StateStopped
	case err != nil && strings.Contains(err.Error(), "failed state"):
		r.State = StateFailed
	default:
		if err == nil {
			err = fmt.Errorf("unknown status %d", st)
		}
		return Report{}, m.failed(err, p, platform, "query")
	}
	return r, nil
}

// writtenByFlm reports whether file is a service definition flm wrote: a
// unit or drop-in with flm's header, or a plist that runs `flm service run`.
// A symlink (a masked unit points to /dev/null) is never flm's.
func writtenByFlm(platform, file string) bool {
	fi, err := os.Lstat(file)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	text := string(b)
	switch platform {
	case PlatformSystemd:
		return strings.HasPrefix(text, unitMarker+"\n") || strings.HasPrefix(text, dropInMarker+"\n")
	case PlatformLaunchd:
		return strings.Contains(text, "<string>service</string>") && strings.Contains(text, "<string>run</string>")
	}
	return true
}
