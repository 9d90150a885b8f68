package service

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	kservice "github.com/kardianos/service"

	"github.com/unjuno/flm/core/flmerr"
)

// Adversarial review of uninstall, status and rollback: flm removes only
// what it wrote, status never reports a state it does not know, and a
// failed install leaves no service behind.

func userManager(t *testing.T) (*Manager, *fakeService, string) {
	t.Helper()
	home, rt := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(rt, "bus"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	svc := &fakeService{status: kservice.StatusStopped}
	m := &Manager{System: fakeSystem{svc}, HomeDir: home, Geteuid: func() int { return 1000 },
		Getenv: func(k string) string {
			if k == "XDG_RUNTIME_DIR" {
				return rt
			}
			return ""
		},
		Run: func(string, ...string) (string, error) { return "", nil }}
	return m, svc, filepath.Join(home, ".config", "systemd", "user", "flm.service")
}

func userProfile() Profile {
	return Profile{Name: Name, Scope: ScopeUser, Executable: "/usr/bin/flm", DataDir: "/home/u/.local/share/flm"}
}

// A flm.service the user wrote by hand (or another program named flm), and
// a masked unit (a symlink to /dev/null): uninstall leaves them, install
// says what is there. Before the fix uninstall deleted them.
func TestServiceReviewUninstallLeavesForeignUnits(t *testing.T) {
	for name, plant := range map[string]func(path string) error{
		"hand-written": func(path string) error {
			return os.WriteFile(path, []byte("[Service]\nExecStart=/opt/other/flm --serve\n"), 0o644)
		},
		"masked": func(path string) error { return os.Symlink("/dev/null", path) },
		"symlink to flm's own text": func(path string) error {
			own, _ := SystemdUnit(userProfile())
			target := filepath.Join(filepath.Dir(path), "elsewhere.service")
			if err := os.WriteFile(target, []byte(own), 0o644); err != nil {
				return err
			}
			return os.Symlink(target, path)
		},
	} {
		t.Run(name, func(t *testing.T) {
			m, svc, unit := userManager(t)
			if err := os.MkdirAll(filepath.Dir(unit), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := plant(unit); err != nil {
				t.Fatal(err)
			}
			_, err := m.Uninstall(userProfile())
			if !flmerr.Is(err, CodeFailed) || !strings.Contains(err.Error(), "not written by `flm service install`") {
				t.Fatalf("uninstall: %v, want SERVICE_FAILED naming the foreign file", err)
			}
			if _, err := os.Lstat(unit); err != nil {
				t.Fatalf("the unit flm did not write was removed: %v", err)
			}
			if slices.Contains(svc.calls, "uninstall") || slices.Contains(svc.calls, "stop") {
				t.Fatalf("kardianos was asked to %q", svc.calls)
			}
			if _, err := m.Install(userProfile()); !flmerr.Is(err, CodeAlreadyInstalled) || !strings.Contains(err.Error(), "not written by") {
				t.Fatalf("install over it: %v", err)
			}
		})
	}
	// flm's own unit is removed as before.
	m, svc, unit := userManager(t)
	own, _ := SystemdUnit(userProfile())
	if err := os.MkdirAll(filepath.Dir(unit), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unit, []byte(own), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Uninstall(userProfile()); err != nil || !slices.Contains(svc.calls, "uninstall") {
		t.Fatalf("uninstall of flm's unit: %v, calls %q", err, svc.calls)
	}
}

// A drop-in at flm's path that flm did not write stays, and the packaged
// unit is then not disabled either.
func TestServiceReviewUninstallLeavesForeignDropIn(t *testing.T) {
	m, _, cmds := reviewManager(t)
	lib := m.PackagedDirs[0]
	packaged, _ := SystemdUnit(defaultSystem())
	if err := os.MkdirAll(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lib, "flm.service"), []byte(packaged), 0o644); err != nil {
		t.Fatal(err)
	}
	dropIn := m.dropInPath(defaultSystem())
	if err := os.MkdirAll(filepath.Dir(dropIn), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dropIn, []byte("[Service]\nEnvironment=MINE=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Uninstall(defaultSystem()); !flmerr.Is(err, CodeFailed) {
		t.Fatalf("uninstall: %v", err)
	}
	if _, err := os.Stat(dropIn); err != nil {
		t.Fatal("the admin's drop-in was removed")
	}
	if len(*cmds) != 0 {
		t.Fatalf("ran %q", *cmds)
	}
}

// kardianos maps systemd's "activating" to running, and a unit that crashed
// and waits for its restart is "activating (auto-restart)": status said
// running for a crash loop. Now: failed.
func TestServiceReviewStatusCrashLoopIsFailed(t *testing.T) {
	m, svc, unit := userManager(t)
	own, _ := SystemdUnit(userProfile())
	if err := os.MkdirAll(filepath.Dir(unit), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unit, []byte(own), 0o644); err != nil {
		t.Fatal(err)
	}
	svc.status = kservice.StatusRunning
	var asked []string
	sub := "auto-restart"
	m.Run = func(name string, args ...string) (string, error) {
		asked = append(asked, strings.Join(append([]string{name}, args...), " "))
		return sub + "\n", nil
	}
	r, err := m.Status(userProfile())
	if err != nil || r.State != StateFailed {
		t.Fatalf("status = %+v, %v; want failed", r, err)
	}
	if want := "systemctl --user show --property=SubState --value flm.service"; !slices.Contains(asked, want) {
		t.Fatalf("asked %q, want %q", asked, want)
	}
	sub = "running"
	if r, err := m.Status(userProfile()); err != nil || r.State != StateRunning {
		t.Fatalf("status = %+v, %v; want running", r, err)
	}
}

// forcedSystemd is kardianos' real linux-systemd system, made to believe
// systemd runs (on this box PID 1 is not systemd).
type forcedSystemd struct{ kservice.System }

func (forcedSystemd) Detect() bool { return true }

// When systemctl cannot reach systemd, `is-active` prints nothing and
// kardianos says "not installed"; flm turned that into "stopped" for an
// installed unit. Now: SERVICE_FAILED. Checked for real where systemd is
// not PID 1.
func TestServiceReviewStatusUnreachableSystemd(t *testing.T) {
	reviewNeeds(t, InitName() != "systemd" && !exists("/run/systemd/system"), "this check needs a box where systemd is not running (CI's machine)")
	reviewNeeds(t, os.Geteuid() == 0, "writing /etc/systemd/system needs root")
	_, err := exec.LookPath("systemctl")
	reviewNeeds(t, err == nil, "systemctl not found: apt-get install systemd")
	var sys kservice.System
	for _, s := range kservice.AvailableSystems() {
		if s.String() == PlatformSystemd {
			sys = forcedSystemd{s}
		}
	}
	if sys == nil {
		t.Fatal("kardianos has no linux-systemd")
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	p := defaultSystem()
	p.Name = "flm-review-" + hex.EncodeToString(b)
	own, err := SystemdUnit(p)
	if err != nil {
		t.Fatal(err)
	}
	unit := "/etc/systemd/system/" + p.Name + ".service"
	t.Cleanup(func() { _ = os.Remove(unit) })
	if err := os.WriteFile(unit, []byte(own), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Manager{System: sys}
	r, err := m.Status(p)
	if !flmerr.Is(err, CodeFailed) {
		t.Fatalf("status with systemd unreachable = %+v, %v; want SERVICE_FAILED", r, err)
	}
}

// A failed install leaves nothing: kardianos wrote the unit and then failed
// (enable or daemon-reload) → the unit is disabled and removed; the packaged
// path removes its drop-in (and the dir it made) when enable or
// daemon-reload fails.
func TestServiceReviewRollback(t *testing.T) {
	m, svc, unit := userManager(t)
	failing := &failingInstall{fakeService: svc, file: unit}
	m.System = installSystem{failing}
	var cmds []string
	m.Run = func(name string, args ...string) (string, error) {
		cmds = append(cmds, strings.Join(append([]string{name}, args...), " "))
		return "", nil
	}
	if _, err := m.Install(userProfile()); !flmerr.Is(err, CodeFailed) {
		t.Fatalf("install: %v", err)
	}
	if _, err := os.Lstat(unit); err == nil {
		t.Fatal("the unit stayed after a failed install")
	}
	if !slices.Contains(cmds, "systemctl --user disable flm.service") {
		t.Fatalf("no disable in %q", cmds)
	}

	for _, failOn := range []string{"enable", "daemon-reload"} {
		m, _, _ := reviewManager(t)
		lib := m.PackagedDirs[0]
		packaged, _ := SystemdUnit(defaultSystem())
		if err := os.MkdirAll(lib, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(lib, "flm.service"), []byte(packaged), 0o644); err != nil {
			t.Fatal(err)
		}
		var cmds []string
		m.Run = func(name string, args ...string) (string, error) {
			cmds = append(cmds, strings.Join(append([]string{name}, args...), " "))
			if len(args) > 0 && args[0] == failOn {
				return "boom", errors.New("exit status 1")
			}
			if len(args) > 0 && args[0] == "is-enabled" {
				return "disabled", nil
			}
			return "", nil
		}
		if os.Geteuid() != 0 {
			reviewNeeds(t, false, "chown of the data dir needs root")
		}
		p := defaultSystem()
		p.Executable = rootExe(t)
		p.DataDir = filepath.Join(t.TempDir(), "data")
		p.Proxy = ProxyFlags{Port: 9000}
		if _, err := m.Install(p); !flmerr.Is(err, CodeFailed) {
			t.Fatalf("%s fails: install %v", failOn, err)
		}
		if _, err := os.Stat(filepath.Dir(m.dropInPath(p))); err == nil {
			t.Fatalf("%s fails: the drop-in dir stayed", failOn)
		}
		if failOn == "daemon-reload" && !slices.Contains(cmds, "systemctl disable flm.service") {
			t.Fatalf("%s fails: not disabled again: %q", failOn, cmds)
		}
	}
}

type installSystem struct{ svc *failingInstall }

func (installSystem) String() string    { return PlatformSystemd }
func (installSystem) Detect() bool      { return true }
func (installSystem) Interactive() bool { return true }
func (f installSystem) New(_ kservice.Interface, c *kservice.Config) (kservice.Service, error) {
	f.svc.cfg = c
	return f.svc, nil
}

// failingInstall writes the unit, then fails as daemon-reload does.
type failingInstall struct {
	*fakeService
	file string
}

func (f *failingInstall) Install() error {
	if err := os.MkdirAll(filepath.Dir(f.file), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(f.file, []byte(f.cfg.Option["SystemdScript"].(string)), 0o644); err != nil {
		return err
	}
	return errors.New("exit status 1")
}
