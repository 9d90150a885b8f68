package service

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/unjuno/flm/core/flmerr"
)

// Adversarial review of the rendered systemd unit: values an attacker or an
// unlucky user passes to `flm service install` must reach the proxy exactly
// as given, and must never add a directive, expand a specifier (%) or an
// environment variable ($), or be dropped by systemd.

// reviewNeeds fails under CI=true when a prerequisite is missing, and skips
// otherwise.
func reviewNeeds(t *testing.T, ok bool, msg string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// hostile are values that break a naively written unit.
var hostile = []string{
	`a"b`, `back\slash`, `trail\`, `100%`, `%n%i%%`, `$HOME`, `${PATH}`, `$$`, `x;y`, `;`, `a b  c`,
	`'single'`, "`id`", `#not-a-comment`, `é€`, `-dash`, `\;`,
}

// parsedUnit is what systemd made of a unit: `systemd-analyze verify`
// prints the loaded unit (unit_dump) at debug log level.
type parsedUnit struct {
	argv     []string // ExecStart, as exec'd ($$ → $ applied to the arguments)
	env      []string
	rwPaths  string
	problems []string // lines about the unit that report a problem
}

func systemdParse(t *testing.T, unit string, user bool) parsedUnit {
	t.Helper()
	_, err := exec.LookPath("systemd-analyze")
	reviewNeeds(t, err == nil, "systemd-analyze not found: apt-get install systemd")
	dir := t.TempDir()
	path := filepath.Join(dir, "flm-review.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"verify", path}
	env := append(os.Environ(), "SYSTEMD_LOG_LEVEL=debug")
	if user {
		args = append([]string{"--user"}, args...)
		env = append(env, "XDG_RUNTIME_DIR="+t.TempDir())
	}
	cmd := exec.Command("systemd-analyze", args...)
	cmd.Env = env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run()
	var p parsedUnit
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, "flm-review.service") &&
			(strings.Contains(line, "ignoring") || strings.Contains(line, "Failed") || strings.Contains(line, "not executable") ||
				strings.Contains(line, "Invalid") || strings.Contains(line, "Unknown")) {
			p.problems = append(p.problems, line)
		}
	}
	inExec := false
	for _, line := range strings.Split(stdout.String(), "\n") {
		l := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(l, "-> ExecStart:"):
			inExec = true
		case strings.HasPrefix(l, "-> "):
			inExec = false
		case inExec && strings.HasPrefix(l, "Command Line: "):
			p.argv = unquoteDump(t, strings.TrimPrefix(l, "Command Line: "))
			for i := 1; i < len(p.argv); i++ {
				p.argv[i] = strings.ReplaceAll(p.argv[i], "$$", "$")
			}
			inExec = false
		case strings.HasPrefix(l, "Environment: "):
			p.env = append(p.env, strings.TrimPrefix(l, "Environment: "))
		case strings.HasPrefix(l, "ReadWritePaths: "):
			p.rwPaths = strings.TrimPrefix(l, "ReadWritePaths: ")
		}
	}
	if p.argv == nil {
		t.Fatalf("systemd loaded no ExecStart:\n%s\nstderr:\n%s\nunit:\n%s", stdout.String(), lastLines(stderr.String(), 20), unit)
	}
	return p
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// unquoteDump splits systemd's quote_command_line output: words separated
// by spaces, a word in double quotes has \" \\ \$ \` escaped.
func unquoteDump(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	for i := 0; i < len(s); {
		if s[i] == ' ' {
			i++
			continue
		}
		var w strings.Builder
		if s[i] == '"' {
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				w.WriteByte(s[i])
			}
			if i >= len(s) {
				t.Fatalf("unterminated quote in %q", s)
			}
			i++
		} else {
			for ; i < len(s) && s[i] != ' '; i++ {
				w.WriteByte(s[i])
			}
		}
		words = append(words, w.String())
	}
	return words
}

// hostileExecutable is a real executable whose path holds the worst
// characters a directory name can have.
func hostileExecutable(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "my apps $HOME ${X} %n %% ;x `id` #é")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "flm")
	if err := os.Symlink("/bin/true", exe); err != nil {
		t.Fatal(err)
	}
	return exe
}

// Every flag value, the data dir, the recorded environment and the binary's
// path come out of systemd's parser exactly as given.
func TestServiceReviewUnitValuesRoundTrip(t *testing.T) {
	exe := hostileExecutable(t)
	for _, scope := range []Scope{ScopeSystem, ScopeUser} {
		for _, v := range hostile {
			p := Profile{Name: Name, Scope: scope, Executable: exe, DataDir: "/srv/data " + v, KeySource: "file",
				Proxy: ProxyFlags{Port: 9000, Domain: v, ACMEEmail: v + "@example.net", DNSProvider: v},
				Env:   map[string]string{"FLM_ACME_DIRECTORY": "https://acme.example/" + v}}
			unit, err := SystemdUnit(p)
			if err != nil {
				t.Fatalf("%s %q: %v", scope, v, err)
			}
			got := systemdParse(t, unit, scope == ScopeUser)
			if len(got.problems) > 0 {
				t.Errorf("%s %q: systemd complains:\n%s\nunit:\n%s", scope, v, strings.Join(got.problems, "\n"), unit)
			}
			want := append([]string{exe}, p.Arguments(PlatformSystemd)...)
			if !slices.Equal(got.argv, want) {
				t.Errorf("%s %q: systemd runs\n%q\nwant\n%q", scope, v, got.argv, want)
			}
			wantEnv := []string{"FLM_DATA_DIR=" + p.DataDir, "FLM_DB_KEY_SOURCE=file", "FLM_ACME_DIRECTORY=https://acme.example/" + v}
			if !slices.Equal(got.env, wantEnv) {
				t.Errorf("%s %q: environment\n%q\nwant\n%q", scope, v, got.env, wantEnv)
			}
			if scope == ScopeSystem && got.rwPaths != p.DataDir {
				t.Errorf("%s %q: ReadWritePaths %q, want %q", scope, v, got.rwPaths, p.DataDir)
			}
		}
	}
}

// The drop-in over the packaged unit quotes the same way.
func TestServiceReviewDropInRoundTrip(t *testing.T) {
	exe := hostileExecutable(t)
	for _, v := range hostile {
		p := defaultSystem()
		p.Executable, p.DataDir, p.Proxy = exe, "/srv/"+v, ProxyFlags{Domain: v}
		dropIn, err := SystemdDropIn(p)
		if err != nil {
			t.Fatal(err)
		}
		packaged, _ := SystemdUnit(defaultSystem())
		// A unit file followed by its drop-in is what systemd merges.
		merged := strings.Replace(packaged, "\n[Install]\n", "\n"+strings.SplitN(dropIn, "[Service]\n", 2)[1]+"\n[Install]\n", 1)
		got := systemdParse(t, merged, false)
		if want := append([]string{exe}, p.Arguments(PlatformSystemd)...); !slices.Equal(got.argv, want) || len(got.problems) > 0 {
			t.Errorf("%q: systemd runs %q (want %q); problems %q", v, got.argv, want, got.problems)
		}
		if want := []string{"FLM_DATA_DIR=" + p.DataDir, "FLM_DB_KEY_SOURCE=file"}; !slices.Equal(got.env, want) {
			t.Errorf("%q: environment %q, want %q", v, got.env, want)
		}
	}
}

// What would add a directive, or that systemd would silently drop, is
// refused in every recorded place, with INVALID_ARGUMENT.
func TestServiceReviewInjectionRefused(t *testing.T) {
	for _, v := range []string{
		"x\n[Service]\nExecStartPre=/bin/sh -c 'id > /tmp/pwned'", "x\rExecStartPre=/bin/sh", "x\x00y", "x\ty",
		"x\u0085y", "{{Path}}", "a}}b{{", "bad\xffutf8",
	} {
		base := Profile{Name: Name, Scope: ScopeSystem, Executable: "/usr/bin/flm", DataDir: "/var/lib/flm", KeySource: "file"}
		for field, p := range map[string]Profile{
			"domain":      withProxy(base, ProxyFlags{Domain: v}),
			"acme-email":  withProxy(base, ProxyFlags{ACMEEmail: v}),
			"dns":         withProxy(base, ProxyFlags{DNSProvider: v}),
			"socks5":      withProxy(base, ProxyFlags{SOCKS5Endpoint: "h" + v + ":1080"}),
			"data dir":    func() Profile { q := base; q.DataDir = "/srv/" + v; return q }(),
			"executable":  func() Profile { q := base; q.Executable = "/opt/" + v + "/flm"; return q }(),
			"env":         func() Profile { q := base; q.Env = map[string]string{"FLM_ACME_DIRECTORY": v}; return q }(),
			"key source":  func() Profile { q := base; q.KeySource = v; return q }(),
			"user domain": func() Profile { q := withProxy(base, ProxyFlags{Domain: v}); q.Scope = ScopeUser; return q }(),
		} {
			if _, err := SystemdUnit(p); !flmerr.Is(err, flmerr.InvalidArgument) {
				t.Errorf("%s %q: SystemdUnit err = %v, want INVALID_ARGUMENT", field, v, err)
			}
			for _, platform := range []string{PlatformSystemd, PlatformLaunchd, PlatformWindows} {
				if _, err := Config(p, platform); !flmerr.Is(err, flmerr.InvalidArgument) {
					t.Errorf("%s %q on %s: Config err = %v, want INVALID_ARGUMENT", field, v, platform, err)
				}
			}
		}
	}
}

func withProxy(p Profile, f ProxyFlags) Profile { p.Proxy = f; return p }

// systemd rejects the whole unit when the binary's path has a quote or a
// backslash ("Executable name contains special characters"): install
// refuses it instead of writing a unit that never loads.
func TestServiceReviewExecutableSpecialCharsRefused(t *testing.T) {
	for _, c := range []string{`"`, `'`, `\`} {
		dir := filepath.Join(t.TempDir(), "a"+c+"b")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		exe := filepath.Join(dir, "flm")
		if err := os.Symlink("/bin/true", exe); err != nil {
			t.Fatal(err)
		}
		for _, scope := range []Scope{ScopeSystem, ScopeUser} {
			p := Profile{Name: Name, Scope: scope, Executable: exe, DataDir: "/var/lib/flm"}
			if _, err := SystemdUnit(p); !flmerr.Is(err, flmerr.InvalidArgument) || !strings.Contains(err.Error(), "quote or a backslash") {
				t.Errorf("%s %s: err = %v, want INVALID_ARGUMENT", scope, exe, err)
			}
			if _, err := Config(p, PlatformSystemd); !flmerr.Is(err, flmerr.InvalidArgument) {
				t.Errorf("%s %s: Config err = %v", scope, exe, err)
			}
		}
		// The claim itself: systemd does reject such a unit.
		_, err := exec.LookPath("systemd-analyze")
		reviewNeeds(t, err == nil, "systemd-analyze not found: apt-get install systemd")
		path := filepath.Join(t.TempDir(), "special.service")
		if err := os.WriteFile(path, []byte("[Service]\nExecStart="+systemdQuote(exe)+" x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _ := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
		if !strings.Contains(string(out), "special characters") {
			t.Errorf("systemd accepted %s: %s", exe, out)
		}
	}
}

// SOCKS5 credentials never reach a service file: the endpoint is host:port.
func TestServiceReviewSOCKS5CredentialsRefused(t *testing.T) {
	for _, bad := range []string{"user:secret@127.0.0.1:1080", "secret@tor:9050", "socks5://127.0.0.1:1080", "127.0.0.1", "host:0", "host:99999", ":1080"} {
		_, err := ProxyFlags{EgressMode: "socks5", SOCKS5Endpoint: bad}.Args()
		if !flmerr.Is(err, flmerr.InvalidArgument) {
			t.Errorf("--socks5-endpoint %q: err = %v, want INVALID_ARGUMENT", bad, err)
		}
	}
	for _, good := range []string{"127.0.0.1:9050", "tor.lan:1080", "[::1]:1080", "[fe80::1%eth0]:1080"} {
		if _, err := (ProxyFlags{EgressMode: "socks5", SOCKS5Endpoint: good}).Args(); err != nil {
			t.Errorf("--socks5-endpoint %q: %v", good, err)
		}
	}
}

// The Windows service manager expands %NAME% in a service's command line
// (REG_EXPAND_SZ, no escape): a "%" there is refused; systemd and launchd
// take it literally.
func TestServiceReviewWindowsPercentRefused(t *testing.T) {
	p := Profile{Name: Name, Scope: ScopeSystem, Executable: `C:\Program Files\flm\flm.exe`, DataDir: `C:\ProgramData\flm`,
		Proxy: ProxyFlags{ACMEEmail: "ops%USERNAME%@example.net"}}
	if _, err := Config(p, PlatformWindows); !flmerr.Is(err, flmerr.InvalidArgument) || !strings.Contains(err.Error(), "expand") {
		t.Fatalf("Windows: err = %v, want INVALID_ARGUMENT about expansion", err)
	}
	exe := p
	exe.Proxy, exe.Executable = ProxyFlags{}, `C:\100%\flm.exe`
	if _, err := Config(exe, PlatformWindows); !flmerr.Is(err, flmerr.InvalidArgument) {
		t.Fatalf("Windows executable with %%: err = %v", err)
	}
	// The same profile is fine where % is literal (or escaped as %%).
	p.Executable, p.DataDir = "/usr/local/bin/flm", "/Library/Application Support/flm"
	if _, err := Config(p, PlatformLaunchd); err != nil {
		t.Fatalf("launchd: %v", err)
	}
	// The env block (registry Environment, REG_MULTI_SZ) is not expanded.
	w := Profile{Name: Name, Scope: ScopeSystem, Executable: `C:\flm\flm.exe`, DataDir: `C:\Data\100%`}
	if _, err := Config(w, PlatformWindows); err != nil {
		t.Fatalf("Windows data dir with %% (environment only): %v", err)
	}
}
