package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	kservice "github.com/kardianos/service"

	"github.com/unjuno/flm/cli/internal/service"
	"github.com/unjuno/flm/core/flmerr"
)

// needs fails the test under CI=true when a prerequisite is missing, and
// skips it otherwise.
func needs(t *testing.T, ok bool, msg string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func systemdIsPID1() bool {
	_, err := os.Stat("/run/systemd/system")
	return err == nil || service.InitName() == "systemd"
}

// On this box PID 1 is not systemd: every `flm service` command refuses,
// names PID 1, and writes no SysV script and no unit.
func TestServiceRefusedWithoutSystemd(t *testing.T) {
	needs(t, runtime.GOOS == "linux" && !systemdIsPID1(), "this test needs Linux without systemd as PID 1 (CI's machine)")
	home := t.TempDir()
	scope := "--user"
	if os.Geteuid() == 0 {
		scope = "--system"
	}
	for _, args := range [][]string{
		{"service", "install", "--port", "9000"}, {"service", "install", "--user"}, {"service", "install", scope},
		{"service", "start"}, {"service", "stop"}, {"service", "status"}, {"service", "uninstall", scope},
	} {
		cmd := exec.Command(flmBin, args...)
		cmd.Env = append(hermeticEnviron(), "HOME="+home, "FLM_DATA_DIR="+filepath.Join(home, "data"))
		out, err := cmd.Output()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || len(out) != 0 {
			t.Fatalf("%v: exit %v, stdout %q; want exit 1 and no output", args, err, out)
		}
		r := result{stderr: string(ee.Stderr)}
		code, msg := r.errCode(t)
		if code != string(service.CodeUnsupported) || !strings.Contains(msg, "PID 1 is "+service.InitName()) ||
			!strings.Contains(msg, "unix-systemv") || !strings.Contains(msg, "flm proxy start --foreground") {
			t.Fatalf("%v: %s: %s", args, code, msg)
		}
	}
	for _, p := range []string{"/etc/init.d/flm", filepath.Join(home, ".config"), filepath.Join(home, "data")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was created", p)
		}
	}
}

// forcedSystemd is kardianos' own linux-systemd system, made to believe
// systemd runs (its Detect is false where PID 1 is not systemd).
type forcedSystemd struct{ kservice.System }

func (forcedSystemd) Detect() bool { return true }

func realSystemd(t *testing.T) kservice.System {
	t.Helper()
	for _, s := range kservice.AvailableSystems() {
		if s.String() == service.PlatformSystemd {
			return forcedSystemd{s}
		}
	}
	t.Fatal("kardianos has no linux-systemd system")
	return nil
}

// verifyUnit runs `systemd-analyze verify` and wants it silent: it exits 0
// on some broken settings ("Failed to parse service restart specifier,
// ignoring") and only prints them.
func verifyUnit(t *testing.T, path string, user bool) {
	t.Helper()
	args := []string{"verify", path}
	env := os.Environ()
	if user {
		args = append([]string{"--user"}, args...)
		env = append(env, "XDG_RUNTIME_DIR="+t.TempDir())
	}
	cmd := exec.Command("systemd-analyze", args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func haveSystemdAnalyze(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("systemd-analyze")
	needs(t, err == nil, "systemd-analyze not found: apt-get install systemd")
}

// The packaged unit parses and its command exists (a copy whose ExecStart
// is the flm built for the tests: /usr/bin/flm is not installed here).
func TestServicePackagedUnitVerifies(t *testing.T) {
	haveSystemdAnalyze(t)
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "packaging", "systemd", "flm.service"))
	if err != nil {
		t.Fatal(err)
	}
	const execStart = "\nExecStart=/usr/bin/flm "
	if !strings.Contains(string(b), execStart) {
		t.Fatalf("packaged unit has no %q", execStart)
	}
	copyPath := filepath.Join(t.TempDir(), "flm.service")
	if err := os.WriteFile(copyPath, []byte(strings.Replace(string(b), execStart, "\nExecStart="+flmBin+" ", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	verifyUnit(t, copyPath, false)

	// A broken copy is caught (the check is not vacuous).
	broken := strings.Replace(string(b), "Restart=on-failure", "Restart=sometimes", 1)
	if err := os.WriteFile(copyPath, []byte(strings.Replace(broken, execStart, "\nExecStart="+flmBin+" ", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("systemd-analyze", "verify", copyPath).CombinedOutput()
	if !strings.Contains(string(out), "restart specifier") {
		t.Fatalf("systemd-analyze did not flag a bad Restart=: %q", out)
	}
}

func randomName(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "flm-test-" + hex.EncodeToString(b)
}

// The system unit through kardianos' real systemd code: install writes the
// rendered unit under /etc/systemd/system and enables it, systemd-analyze
// accepts it, uninstall removes it. Where systemd is not PID 1, daemon-reload
// fails after the file was written: the Manager rolls back, and the raw
// kardianos install leaves the file for the checks.
func TestServiceSystemdRoundTrip(t *testing.T) {
	needs(t, runtime.GOOS == "linux", "systemd is Linux only")
	needs(t, os.Geteuid() == 0, "writing /etc/systemd/system needs root")
	haveSystemdAnalyze(t)
	_, err := exec.LookPath("systemctl")
	needs(t, err == nil, "systemctl not found: apt-get install systemd")

	name := randomName(t)
	unitPath := "/etc/systemd/system/" + name + ".service"
	wants := "/etc/systemd/system/multi-user.target.wants/" + name + ".service"
	t.Cleanup(func() {
		_ = exec.Command("systemctl", "disable", name+".service").Run()
		_ = os.Remove(unitPath)
		_ = os.Remove(wants)
	})
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if me.Uid == "0" {
		// The flm account must not be root's (install refuses that).
		me = &user.User{Username: service.SystemUser, Uid: "65534", Gid: "65534"}
	}
	p := service.Profile{Name: name, Scope: service.ScopeSystem, Executable: flmBin, DataDir: filepath.Join(t.TempDir(), "data dir"),
		KeySource: "file", Proxy: service.ProxyFlags{Port: 18080, Bind: "127.0.0.1"}}
	sys := realSystemd(t)
	m := &service.Manager{System: sys, LookupUser: func(string) (*user.User, error) { return me, nil }}
	want, err := service.SystemdUnit(p)
	if err != nil {
		t.Fatal(err)
	}

	// Through the Manager (what `flm service install --system` does).
	_, err = m.Install(p)
	if systemdIsPID1() {
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(unitPath)
		if string(got) != want {
			t.Fatalf("unit written:\n%s\nwant:\n%s", got, want)
		}
		verifyUnit(t, unitPath, false)
		if _, err := m.Uninstall(p); err != nil {
			t.Fatal(err)
		}
	} else {
		if !flmerr.Is(err, service.CodeFailed) {
			t.Fatalf("install without systemd as PID 1: %v, want SERVICE_FAILED", err)
		}
		for _, f := range []string{unitPath, wants} {
			if _, err := os.Lstat(f); err == nil {
				t.Fatalf("%s left behind after a failed install", f)
			}
		}
		// Raw kardianos, as the Manager drives it: the file, the symlink,
		// then daemon-reload fails.
		c, err := service.Config(p, service.PlatformSystemd)
		if err != nil {
			t.Fatal(err)
		}
		s, err := sys.New(nopProgram{}, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Install(); err == nil {
			t.Fatal("daemon-reload succeeded without systemd as PID 1?")
		}
		got, err := os.ReadFile(unitPath)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("unit written:\n%s\nwant:\n%s", got, want)
		}
		if target, err := os.Readlink(wants); err != nil || target != unitPath {
			t.Fatalf("enable symlink: %q, %v", target, err)
		}
		verifyUnit(t, unitPath, false)
		_ = s.Uninstall() // daemon-reload fails again, after the removal
	}
	for _, f := range []string{unitPath, wants} {
		if _, err := os.Lstat(f); err == nil {
			t.Fatalf("%s left behind after uninstall", f)
		}
	}

	// The user unit parses too (verified as a file: no user manager here).
	up := p
	up.Scope, up.KeySource = service.ScopeUser, ""
	userUnit, err := service.SystemdUnit(up)
	if err != nil {
		t.Fatal(err)
	}
	userPath := filepath.Join(t.TempDir(), name+".service")
	if err := os.WriteFile(userPath, []byte(userUnit), 0o644); err != nil {
		t.Fatal(err)
	}
	verifyUnit(t, userPath, true)
}

type nopProgram struct{}

func (nopProgram) Start(kservice.Service) error { return nil }
func (nopProgram) Stop(kservice.Service) error  { return nil }

// fakeSystemd lets the CLI run against a Manager that touches nothing but
// temp dirs.
type fakeSystemd struct{ svc *fakeSvc }

func (fakeSystemd) String() string    { return service.PlatformSystemd }
func (fakeSystemd) Detect() bool      { return true }
func (fakeSystemd) Interactive() bool { return true }
func (f fakeSystemd) New(_ kservice.Interface, c *kservice.Config) (kservice.Service, error) {
	f.svc.cfg = c
	return f.svc, nil
}

type fakeSvc struct {
	kservice.Service
	cfg    *kservice.Config
	file   string
	status kservice.Status
}

func (f *fakeSvc) Install() error {
	if err := os.MkdirAll(filepath.Dir(f.file), 0o755); err != nil {
		return err
	}
	return os.WriteFile(f.file, []byte(f.cfg.Option["SystemdScript"].(string)), 0o644)
}
func (f *fakeSvc) Uninstall() error                 { return os.Remove(f.file) }
func (f *fakeSvc) Start() error                     { f.status = kservice.StatusRunning; return nil }
func (f *fakeSvc) Stop() error                      { f.status = kservice.StatusStopped; return nil }
func (f *fakeSvc) Status() (kservice.Status, error) { return f.status, nil }

func TestServiceCLIUserLifecycle(t *testing.T) {
	home, rt, dir := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(rt, "bus"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	svc := &fakeSvc{file: filepath.Join(home, ".config", "systemd", "user", "flm.service"), status: kservice.StatusStopped}
	oldM, oldExe, oldUID := newServiceManager, serviceExecutable, serviceEUID
	t.Cleanup(func() { newServiceManager, serviceExecutable, serviceEUID = oldM, oldExe, oldUID })
	newServiceManager = func() *service.Manager {
		return &service.Manager{System: fakeSystemd{svc}, HomeDir: home, Geteuid: func() int { return 1000 },
			Getenv: func(k string) string {
				if k == "XDG_RUNTIME_DIR" {
					return rt
				}
				return ""
			}}
	}
	serviceExecutable = func() (string, error) { return "/usr/local/bin/flm", nil }
	serviceEUID = func() int { return 1000 } // not root: the user service by default

	var st service.Report
	ok(t, dir, "service", "status").data(t, &st)
	if st.State != service.StateNotInstalled || st.Scope != service.ScopeUser {
		t.Fatalf("status = %+v", st)
	}
	if out := ok(t, dir, "service", "status", "--format", "text").stdout; !strings.HasPrefix(out, "flm user service (linux-systemd): not installed\n") {
		t.Fatalf("text status: %q", out)
	}
	fails(t, dir, 1, string(service.CodeNotInstalled), "service", "start")

	var inst service.Report
	ok(t, dir, "service", "install", "--port", "9000", "--bind", "127.0.0.1").data(t, &inst)
	if want := []string{"/usr/local/bin/flm", "proxy", "start", "--foreground", "--port", "9000", "--bind", "127.0.0.1"}; !slices.Equal(inst.Command, want) {
		t.Fatalf("command = %q, want %q", inst.Command, want)
	}
	if inst.Env["FLM_DATA_DIR"] != dir || inst.File != svc.file || inst.Logs != "journalctl --user -u flm" {
		t.Fatalf("install report = %+v", inst)
	}
	unit, err := os.ReadFile(svc.file)
	if err != nil || !strings.Contains(string(unit), "\nExecStart=/usr/local/bin/flm proxy start --foreground --port 9000 --bind 127.0.0.1\n") {
		t.Fatalf("unit: %v\n%s", err, unit)
	}
	fails(t, dir, 1, string(service.CodeAlreadyInstalled), "service", "install")

	ok(t, dir, "service", "status").data(t, &st)
	if st.State != service.StateStopped {
		t.Fatalf("after install: %+v", st)
	}
	ok(t, dir, "service", "start")
	if out := ok(t, dir, "service", "status", "--format", "text").stdout; !strings.HasPrefix(out, "flm user service (linux-systemd): running\n") {
		t.Fatalf("text status: %q", out)
	}
	ok(t, dir, "service", "stop")
	ok(t, dir, "service", "status").data(t, &st)
	if st.State != service.StateStopped {
		t.Fatalf("after stop: %+v", st)
	}
	ok(t, dir, "service", "uninstall")
	if _, err := os.Stat(svc.file); err == nil {
		t.Fatal("unit still there after uninstall")
	}
	fails(t, dir, 1, string(service.CodeNotInstalled), "service", "uninstall")
	fails(t, dir, 1, "INVALID_ARGUMENT", "service", "install", "--port", "70000")
	fails(t, dir, 1, "INVALID_ARGUMENT", "service", "install", "--mode", "plain")
	fails(t, dir, 1, "INVALID_ARGUMENT", "--key-source", "env", "service", "install")
}

// A key in FLM_DB_KEY cannot reach a service without being written into a
// world-readable unit: install refuses it.
func TestServiceRefusesKeyInEnvironment(t *testing.T) {
	oldM, oldExe := newServiceManager, serviceExecutable
	t.Cleanup(func() { newServiceManager, serviceExecutable = oldM, oldExe })
	newServiceManager = func() *service.Manager { return &service.Manager{System: fakeSystemd{&fakeSvc{}}} }
	serviceExecutable = func() (string, error) { return "/usr/local/bin/flm", nil }
	a := &App{Env: Env{Getenv: func(k string) string {
		if k == "FLM_DB_KEY" {
			return strings.Repeat("ab", 32)
		}
		return ""
	}}, Globals: Globals{DataDir: t.TempDir()}}
	_, err := a.serviceProfile(service.ScopeUser, service.ProxyFlags{}, true)
	if !flmerr.Is(err, flmerr.InvalidArgument) || !strings.Contains(err.Error(), "FLM_DB_KEY") {
		t.Fatalf("err = %v", err)
	}
	// The system service always keeps the key in a file.
	a.Getenv = func(string) string { return "" }
	a.Globals.KeySource = "keychain"
	if _, err := a.serviceProfile(service.ScopeSystem, service.ProxyFlags{}, true); runtime.GOOS != "windows" && !flmerr.Is(err, flmerr.InvalidArgument) {
		t.Fatalf("system service with the keychain: %v", err)
	}
}

// The launchd/Windows adapter: Start returns at once, Stop ends the proxy
// gracefully; a proxy that fails on its own ends the process (so the
// service manager restarts it).
func TestServiceProgram(t *testing.T) {
	started := make(chan struct{})
	p := &serviceProgram{parent: context.Background(), run: func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return nil
	}, exit: func(err error) { t.Errorf("exit(%v) on a requested stop", err) }}
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	<-started
	if err := p.Stop(nil); err != nil {
		t.Fatal(err)
	}

	exited := make(chan error, 1)
	boom := flmerr.New(flmerr.ProxyPortInUse, "port 8080 is in use")
	p = &serviceProgram{parent: context.Background(), run: func(context.Context) error { return boom }, exit: func(err error) { exited <- err }}
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if !errors.Is(err, boom) {
			t.Fatalf("exit(%v)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a failed proxy did not end the process")
	}
}

type recLogger struct {
	mu    sync.Mutex
	lines []string
}

func (l *recLogger) add(level string, v ...any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, level+" "+fmt.Sprint(v...))
	return nil
}
func (l *recLogger) Error(v ...any) error   { return l.add("E", v...) }
func (l *recLogger) Warning(v ...any) error { return l.add("W", v...) }
func (l *recLogger) Info(v ...any) error    { return l.add("I", v...) }
func (l *recLogger) Errorf(f string, v ...any) error {
	return l.add("E", fmt.Sprintf(f, v...))
}
func (l *recLogger) Warningf(f string, v ...any) error {
	return l.add("W", fmt.Sprintf(f, v...))
}
func (l *recLogger) Infof(f string, v ...any) error { return l.add("I", fmt.Sprintf(f, v...)) }

func TestServiceLogLines(t *testing.T) {
	rec := &recLogger{}
	w := &logLines{log: rec, stderr: true}
	fmt.Fprint(w, `{"level":"WARN","msg":"policy"}`+"\n"+`{"level":"INFO","msg":"rel`)
	fmt.Fprint(w, "oaded\"}\nerror: boom\nwarning: key in file\n\npartial")
	w.Flush()
	want := []string{`W {"level":"WARN","msg":"policy"}`, `I {"level":"INFO","msg":"reloaded"}`, "E error: boom", "W warning: key in file", "I partial"}
	if !slices.Equal(rec.lines, want) {
		t.Fatalf("logged %q, want %q", rec.lines, want)
	}
}
