package service

import (
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	kservice "github.com/kardianos/service"

	"github.com/unjuno/flm/core/flmerr"
)

func defaultSystem() Profile {
	return Profile{Name: Name, Scope: ScopeSystem, Executable: PackagedExecutable, DataDir: SystemDataDir, KeySource: "file"}
}

func TestServiceProxyFlagsArgs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags ProxyFlags
		want  []string
		code  flmerr.Code
	}{
		{"none: the proxy's defaults apply", ProxyFlags{}, nil, ""},
		{"fixed order", ProxyFlags{DNSProvider: "cloudflare", Port: 9000, Bind: "0.0.0.0", Mode: "https-acme", Domain: "llm.example.net", ACMEChallenge: "dns-01"},
			[]string{"--port", "9000", "--mode", "https-acme", "--bind", "0.0.0.0", "--domain", "llm.example.net", "--acme-challenge", "dns-01", "--dns-provider", "cloudflare"}, ""},
		{"egress", ProxyFlags{EgressMode: "socks5", SOCKS5Endpoint: "127.0.0.1:1080", EgressFailOpen: true},
			[]string{"--egress-mode", "socks5", "--socks5-endpoint", "127.0.0.1:1080", "--egress-fail-open"}, ""},
		{"port out of range", ProxyFlags{Port: 70000}, nil, flmerr.InvalidArgument},
		{"unknown mode", ProxyFlags{Mode: "plain"}, nil, flmerr.InvalidArgument},
		{"bind not an IP", ProxyFlags{Bind: "localhost"}, nil, flmerr.InvalidArgument},
		{"unknown challenge", ProxyFlags{ACMEChallenge: "dns-02"}, nil, flmerr.InvalidArgument},
		{"newline would add a unit directive", ProxyFlags{Domain: "a.example\nExecStartPre=/bin/sh"}, nil, flmerr.InvalidArgument},
		{"braces would be a kardianos template action", ProxyFlags{ACMEEmail: "{{Path}}@example.net"}, nil, flmerr.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.flags.Args()
			if tc.code != "" {
				if !flmerr.Is(err, tc.code) {
					t.Fatalf("err = %v, want code %s", err, tc.code)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("Args() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// The unit the .deb/.rpm ship is exactly what `flm service install
// --system` writes for the default profile.
func TestServicePackagedUnitIsTheRenderedDefault(t *testing.T) {
	want, err := SystemdUnit(defaultSystem())
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", "..", "packaging", "systemd", "flm.service"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("packaging/systemd/flm.service differs from SystemdUnit(default system profile); regenerate it.\n--- rendered:\n%s", want)
	}
	for _, line := range []string{
		"Type=simple", "ExecStart=/usr/bin/flm proxy start --foreground", "User=flm", "Group=flm",
		"Environment=FLM_DATA_DIR=/var/lib/flm FLM_DB_KEY_SOURCE=file", "Restart=on-failure", "RestartSec=5s",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/flm", "ProtectHome=yes", "PrivateTmp=yes",
		"WantedBy=multi-user.target",
	} {
		if !slices.Contains(strings.Split(want, "\n"), line) {
			t.Errorf("unit lacks %q", line)
		}
	}
	// The proxy must still bind its port and reach engines on loopback and
	// the LAN: no network sandboxing.
	for _, banned := range []string{"PrivateNetwork", "IPAddressDeny", "MemoryDenyWriteExecute", "{{"} {
		if strings.Contains(want, banned) {
			t.Errorf("unit sets %s", banned)
		}
	}
}

func TestServiceUnitQuoting(t *testing.T) {
	p := Profile{Name: Name, Scope: ScopeUser, Executable: "/opt/my apps/flm", DataDir: "/home/a/data 100%",
		Proxy: ProxyFlags{Port: 9000, ACMEEmail: `me$HOME"x@example.net`}}
	u, err := SystemdUnit(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`Environment="FLM_DATA_DIR=/home/a/data 100%%"`,
		`ExecStart="/opt/my apps/flm" proxy start --foreground --port 9000 --acme-email "me$$HOME\"x@example.net"`,
		"EnvironmentFile=-%E/flm/service.env",
		"WantedBy=default.target",
	} {
		if !slices.Contains(strings.Split(u, "\n"), line) {
			t.Errorf("unit lacks %q:\n%s", line, u)
		}
	}
	for _, systemOnly := range []string{"User=", "ProtectSystem=", "network-online.target"} {
		if strings.Contains(u, systemOnly) {
			t.Errorf("user unit sets %s", systemOnly)
		}
	}
}

func TestServiceConfigPerPlatform(t *testing.T) {
	flags := ProxyFlags{Port: 9000, Bind: "192.168.1.5"}
	t.Run("systemd system", func(t *testing.T) {
		p := defaultSystem()
		p.Proxy = flags
		c, err := Config(p, PlatformSystemd)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"proxy", "start", "--foreground", "--port", "9000", "--bind", "192.168.1.5"}; !slices.Equal(c.Arguments, want) {
			t.Errorf("Arguments = %q, want %q", c.Arguments, want)
		}
		if c.Executable != PackagedExecutable || c.UserName != SystemUser || c.Name != Name {
			t.Errorf("config = %+v", c)
		}
		if c.Option["UserService"] != false || c.Option["Restart"] != "on-failure" {
			t.Errorf("options = %v", c.Option)
		}
		unit, _ := SystemdUnit(p)
		if c.Option["SystemdScript"] != unit {
			t.Errorf("SystemdScript is not the rendered unit")
		}
		if !strings.Contains(unit, "\nExecStart=/usr/bin/flm proxy start --foreground --port 9000 --bind 192.168.1.5\n") {
			t.Errorf("unit's ExecStart:\n%s", unit)
		}
	})
	t.Run("systemd user", func(t *testing.T) {
		p := Profile{Name: Name, Scope: ScopeUser, Executable: "/usr/local/bin/flm", DataDir: "/home/u/.local/share/flm", KeySource: "keychain"}
		c, err := Config(p, PlatformSystemd)
		if err != nil {
			t.Fatal(err)
		}
		unit := c.Option["SystemdScript"].(string)
		if c.Option["UserService"] != true || c.UserName != "" {
			t.Errorf("user service config = %+v", c)
		}
		if !strings.Contains(unit, "\nEnvironment=FLM_DATA_DIR=/home/u/.local/share/flm FLM_DB_KEY_SOURCE=keychain\n") {
			t.Errorf("user unit's environment:\n%s", unit)
		}
	})
	t.Run("launchd agent", func(t *testing.T) {
		p := Profile{Name: Name, Scope: ScopeUser, Executable: "/usr/local/bin/flm", DataDir: "/Users/u/Library/Application Support/flm", Proxy: flags}
		c, err := Config(p, PlatformLaunchd)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"service", "run", "--port", "9000", "--bind", "192.168.1.5"}; !slices.Equal(c.Arguments, want) {
			t.Errorf("Arguments = %q, want %q", c.Arguments, want)
		}
		if !reflect.DeepEqual(c.EnvVars, map[string]string{"FLM_DATA_DIR": p.DataDir}) {
			t.Errorf("EnvVars = %v", c.EnvVars)
		}
		if c.Option["UserService"] != true || c.Option["KeepAlive"] != true || c.Option["RunAtLoad"] != true ||
			c.Option["LogDirectory"] != filepath.Join(p.DataDir, "logs") {
			t.Errorf("options = %v", c.Option)
		}
	})
	t.Run("windows service", func(t *testing.T) {
		p := Profile{Name: Name, Scope: ScopeSystem, Executable: `C:\Program Files\flm\flm.exe`, DataDir: `C:\ProgramData\flm`,
			Env: map[string]string{"FLM_ACME_DIRECTORY": "staging"}}
		c, err := Config(p, PlatformWindows)
		if err != nil {
			t.Fatal(err)
		}
		if c.Arguments[0] != "service" || c.Arguments[1] != "run" {
			t.Errorf("Arguments = %q", c.Arguments)
		}
		if c.Option["OnFailure"] != "restart" || c.Option["OnFailureDelayDuration"] != "5s" || c.Option["StartType"] != "automatic" {
			t.Errorf("options = %v", c.Option)
		}
		if !reflect.DeepEqual(c.EnvVars, map[string]string{"FLM_DATA_DIR": `C:\ProgramData\flm`, "FLM_ACME_DIRECTORY": "staging"}) {
			t.Errorf("EnvVars = %v", c.EnvVars)
		}
	})
	t.Run("sysv refused", func(t *testing.T) {
		if _, err := Config(defaultSystem(), "unix-systemv"); !flmerr.Is(err, CodeUnsupported) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestServiceCheck(t *testing.T) {
	for _, ok := range []string{PlatformSystemd, PlatformLaunchd, PlatformWindows} {
		if err := Check(ok, ScopeSystem, "init"); err != nil {
			t.Errorf("Check(%s) = %v", ok, err)
		}
	}
	for _, bad := range []string{"unix-systemv", "linux-upstart", "linux-openrc", "linux-rcs", "linux-procd", ""} {
		err := Check(bad, ScopeUser, "process_api")
		if !flmerr.Is(err, CodeUnsupported) || !strings.Contains(err.Error(), "PID 1 is process_api") ||
			!strings.Contains(err.Error(), "flm proxy start --foreground") {
			t.Errorf("Check(%q) = %v", bad, err)
		}
	}
	if err := Check(PlatformWindows, ScopeUser, ""); !flmerr.Is(err, CodeUnsupported) {
		t.Errorf("a user service on Windows: %v", err)
	}
}

// Whatever the machine runs, a Manager given kardianos' SysV system refuses
// every command before anything is written (the rule, apart from what this
// box's PID 1 is).
func TestServiceRefusesSysVInjected(t *testing.T) {
	var sysv kservice.System
	for _, s := range kservice.AvailableSystems() {
		if s.String() == "unix-systemv" {
			sysv = s
		}
	}
	if sysv == nil {
		t.Fatalf("kardianos offers no unix-systemv on %s", runtime.GOOS)
	}
	etc := t.TempDir()
	m := &Manager{System: sysv, EtcDir: etc, HomeDir: t.TempDir(),
		Run: func(name string, args ...string) (string, error) {
			t.Errorf("ran %s %v", name, args)
			return "", nil
		}}
	p := defaultSystem()
	p.Name = "flm-test-sysv-injected"
	for name, op := range map[string]func(Profile) (Report, error){"install": m.Install, "uninstall": m.Uninstall, "start": m.Start, "stop": m.Stop, "status": m.Status} {
		if _, err := op(p); !flmerr.Is(err, CodeUnsupported) || !strings.Contains(err.Error(), "unix-systemv") {
			t.Errorf("%s: err = %v, want SERVICE_UNSUPPORTED naming unix-systemv", name, err)
		}
	}
	if entries, _ := os.ReadDir(etc); len(entries) != 0 {
		t.Errorf("files written under the unit dir: %v", entries)
	}
	if exists("/etc/init.d/" + p.Name) {
		t.Fatal("an init.d script was written")
	}
}

// On a Linux box whose PID 1 is not systemd, kardianos picks unix-systemv
// and would write /etc/init.d/<name>; the Manager refuses before anything
// is written.
func TestServiceRefusesSysVForReal(t *testing.T) {
	reviewNeeds(t, runtime.GOOS == "linux" && InitName() != "systemd" && !exists("/run/systemd/system"),
		"this test needs Linux without systemd as PID 1 (CI's machine; TestServiceRefusesSysVInjected covers the rule anywhere)")
	m := &Manager{}
	if got := m.Platform(); got != "unix-systemv" {
		t.Fatalf("kardianos chose %q, want unix-systemv on this box (PID 1 %q)", got, InitName())
	}
	p := defaultSystem()
	p.Name = "flm-test-sysv"
	t.Cleanup(func() { _ = os.Remove("/etc/init.d/" + p.Name) })
	for name, op := range map[string]func(Profile) (Report, error){"install": m.Install, "uninstall": m.Uninstall, "start": m.Start, "stop": m.Stop, "status": m.Status} {
		if _, err := op(p); !flmerr.Is(err, CodeUnsupported) || !strings.Contains(err.Error(), "PID 1 is "+InitName()) {
			t.Errorf("%s: err = %v, want SERVICE_UNSUPPORTED naming PID 1", name, err)
		}
	}
	if exists("/etc/init.d/" + p.Name) {
		t.Fatal("an init.d script was written")
	}
}

// fakeSystem stands for linux-systemd in Manager tests that must not touch
// the machine; fakeService records what the manager asks of it.
type fakeSystem struct{ svc *fakeService }

func (f fakeSystem) String() string    { return PlatformSystemd }
func (f fakeSystem) Detect() bool      { return true }
func (f fakeSystem) Interactive() bool { return true }
func (f fakeSystem) New(_ kservice.Interface, c *kservice.Config) (kservice.Service, error) {
	f.svc.cfg = c
	return f.svc, nil
}

type fakeService struct {
	kservice.Service
	cfg    *kservice.Config
	calls  []string
	status kservice.Status
}

func (f *fakeService) Install() error   { f.calls = append(f.calls, "install"); return nil }
func (f *fakeService) Uninstall() error { f.calls = append(f.calls, "uninstall"); return nil }
func (f *fakeService) Start() error     { f.calls = append(f.calls, "start"); return nil }
func (f *fakeService) Stop() error      { f.calls = append(f.calls, "stop"); return nil }
func (f *fakeService) Status() (kservice.Status, error) {
	return f.status, nil
}

// A system install where the .deb's unit exists enables that unit and puts
// a non-default profile in a drop-in; it never writes a second unit.
func TestServicePackagedUnitIsEnabledNotShadowed(t *testing.T) {
	root := t.TempDir()
	etc, lib := filepath.Join(root, "etc"), filepath.Join(root, "lib")
	if err := os.MkdirAll(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	packaged, _ := SystemdUnit(defaultSystem())
	if err := os.WriteFile(filepath.Join(lib, "flm.service"), []byte(packaged), 0o644); err != nil {
		t.Fatal(err)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if me.Uid == "0" {
		// The flm account must not be root's (install refuses that): as
		// root, stand in with nobody.
		me = &user.User{Username: SystemUser, Uid: "65534", Gid: "65534"}
	}
	svc := &fakeService{}
	var cmds []string
	enabled := "disabled"
	m := &Manager{System: fakeSystem{svc}, EtcDir: etc, PackagedDirs: []string{lib}, Geteuid: func() int { return 0 },
		LookupUser: func(string) (*user.User, error) { return me, nil },
		Run: func(name string, args ...string) (string, error) {
			cmd := strings.Join(append([]string{name}, args...), " ")
			cmds = append(cmds, cmd)
			return enabled, nil
		}}
	p := defaultSystem()
	p.DataDir = filepath.Join(root, "data")
	p.Proxy = ProxyFlags{Port: 9000}

	r, err := m.Install(p)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Packaged || r.File != filepath.Join(lib, "flm.service") || r.DropIn == "" {
		t.Fatalf("report = %+v", r)
	}
	if exists(filepath.Join(etc, "flm.service")) {
		t.Fatal("a second unit was written under /etc")
	}
	if len(svc.calls) != 0 {
		t.Fatalf("kardianos was asked to %v", svc.calls)
	}
	dropIn, err := os.ReadFile(r.DropIn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dropIn), "\nExecStart=\nExecStart=/usr/bin/flm proxy start --foreground --port 9000\n") ||
		!strings.Contains(string(dropIn), "\nReadWritePaths="+p.DataDir+"\n") {
		t.Fatalf("drop-in:\n%s", dropIn)
	}
	if want := []string{"systemctl is-enabled flm.service", "systemctl enable flm.service", "systemctl daemon-reload"}; !slices.Equal(cmds, want) {
		t.Fatalf("commands = %q, want %q", cmds, want)
	}
	if fi, err := os.Stat(p.DataDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v %v", fi, err)
	}

	// Installed now: a second install is refused, status asks systemd.
	enabled = "enabled"
	if _, err := m.Install(p); !flmerr.Is(err, CodeAlreadyInstalled) {
		t.Fatalf("second install: %v", err)
	}
	svc.status = kservice.StatusRunning
	if st, err := m.Status(p); err != nil || st.State != StateRunning || !st.Packaged {
		t.Fatalf("status = %+v, %v", st, err)
	}

	cmds = nil
	if _, err := m.Uninstall(p); err != nil {
		t.Fatal(err)
	}
	if exists(r.DropIn) || !exists(filepath.Join(lib, "flm.service")) {
		t.Fatal("uninstall must remove the drop-in and leave the packaged unit")
	}
	// (installed: the drop-in is there, no need to ask systemctl)
	if want := []string{"systemctl disable --now flm.service", "systemctl daemon-reload"}; !slices.Equal(cmds, want) {
		t.Fatalf("commands = %q, want %q", cmds, want)
	}

	// The default profile needs no drop-in.
	enabled = "disabled"
	p2 := defaultSystem()
	if d, err := SystemdDropIn(p2); err != nil || d != "" {
		t.Fatalf("drop-in for the default profile = %q, %v", d, err)
	}
}

func TestServiceStatusStates(t *testing.T) {
	home := t.TempDir()
	rt := t.TempDir()
	if err := os.WriteFile(filepath.Join(rt, "bus"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	svc := &fakeService{}
	m := &Manager{System: fakeSystem{svc}, HomeDir: home, Geteuid: func() int { return 1000 },
		Getenv: func(k string) string {
			if k == "XDG_RUNTIME_DIR" {
				return rt
			}
			return ""
		}}
	p := Profile{Name: Name, Scope: ScopeUser, Executable: "/usr/bin/flm", DataDir: filepath.Join(home, "data")}
	st, err := m.Status(p)
	if err != nil || st.State != StateNotInstalled || st.File != "" {
		t.Fatalf("status before install = %+v, %v", st, err)
	}
	if _, err := m.Start(p); !flmerr.Is(err, CodeNotInstalled) {
		t.Fatalf("start before install: %v", err)
	}
	unit := filepath.Join(home, ".config", "systemd", "user", "flm.service")
	if err := os.MkdirAll(filepath.Dir(unit), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unit, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for want, s := range map[string]kservice.Status{StateStopped: kservice.StatusStopped, StateRunning: kservice.StatusRunning} {
		svc.status = s
		st, err := m.Status(p)
		if err != nil || st.State != want || st.File != unit || st.Logs != "journalctl --user -u flm" {
			t.Errorf("status = %+v, %v; want %s", st, err, want)
		}
	}
	// Without a user bus every operation that needs systemctl --user fails
	// before it changes anything.
	m.Getenv = func(string) string { return "" }
	if _, err := m.Start(p); !flmerr.Is(err, CodeFailed) || !strings.Contains(err.Error(), "XDG_RUNTIME_DIR") {
		t.Fatalf("start without a user bus: %v", err)
	}
	if slices.Contains(svc.calls, "start") {
		t.Fatal("kardianos Start was called without a user bus")
	}
}
