package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/unjuno/flm/cli/internal/service"
)

// snapshot lists every entry under the roots with its mode, size and
// modification time ("" for a root that does not exist).
func snapshot(t *testing.T, roots ...string) []string {
	t.Helper()
	var out []string
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			out = append(out, fmt.Sprintf("%s %v %d %d", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano()))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(out)
	return out
}

// Where PID 1 is not systemd, kardianos would fall back to SysV and write
// /etc/init.d/flm. Every subcommand, every scope, with and without hostile
// flags, as root and as an unprivileged user, refuses with
// SERVICE_UNSUPPORTED and changes nothing under /etc/init.d, /etc/systemd,
// the home (~/.config/systemd) or the data dir.
func TestServiceReviewSysVWritesNothing(t *testing.T) {
	needs(t, runtime.GOOS == "linux" && !systemdIsPID1(), "this test needs Linux without systemd as PID 1 (CI's machine)")
	needs(t, os.Geteuid() == 0, "running flm as another user needs root")
	home := filepath.Join(t.TempDir(), "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(filepath.Dir(home), 0o755)
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	// flm itself must be reachable by nobody.
	exe := filepath.Join(t.TempDir(), "flm")
	_ = os.Chmod(filepath.Dir(exe), 0o755)
	_ = os.Chmod(filepath.Dir(filepath.Dir(exe)), 0o755) // the test's temp root
	b, err := os.ReadFile(flmBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(home, "data")
	roots := []string{"/etc/init.d", "/etc/systemd", "/etc/rc0.d", "/etc/rc2.d", "/etc/flm", "/var/lib/flm", home}
	before := snapshot(t, roots...)
	hostile := "x\n[Service]\nExecStartPre=/bin/sh -c 'touch /tmp/pwned'"
	var runs int
	for _, asRoot := range []bool{true, false} {
		for _, sub := range []string{"install", "uninstall", "start", "stop", "status"} {
			for _, scope := range []string{"", "--user", "--system"} {
				for _, extra := range [][]string{nil, {"--data-dir", data}} {
					args := append([]string{}, extra...)
					args = append(args, "service", sub)
					if scope != "" {
						args = append(args, scope)
					}
					if sub == "install" {
						args = append(args, "--port", "9000", "--domain", hostile, "--bind", "0.0.0.0")
					}
					cmd := exec.Command(exe, args...)
					cmd.Env = append(hermeticEnviron(), "HOME="+home, "FLM_DATA_DIR="+data, "XDG_RUNTIME_DIR="+home)
					cmd.Dir = "/"
					if !asRoot {
						cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
					}
					out, err := cmd.Output()
					var ee *exec.ExitError
					if !errors.As(err, &ee) || ee.ExitCode() != 1 || len(out) != 0 {
						t.Fatalf("root=%v %q: %v, stdout %q", asRoot, args, err, out)
					}
					code, msg := (result{stderr: string(ee.Stderr)}).errCode(t)
					if code != string(service.CodeUnsupported) || !strings.Contains(msg, "unix-systemv") {
						t.Fatalf("root=%v %q: %s %s", asRoot, args, code, msg)
					}
					runs++
				}
			}
		}
	}
	if after := snapshot(t, roots...); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("something changed after %d refused runs:\nbefore:\n%s\nafter:\n%s", runs, strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
	if _, err := os.Lstat("/tmp/pwned"); err == nil {
		t.Fatal("/tmp/pwned exists")
	}
}

// `sudo -E flm service install --user`: HOME is another user's. Refused
// before the data dir is created in it.
func TestServiceReviewRootUserServiceCLI(t *testing.T) {
	needs(t, os.Geteuid() == 0, "chown needs root")
	home := filepath.Join(t.TempDir(), "alice")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	rt := t.TempDir()
	if err := os.WriteFile(filepath.Join(rt, "bus"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	svc := &fakeSvc{file: filepath.Join(home, ".config", "systemd", "user", "flm.service")}
	oldM, oldExe, oldUID := newServiceManager, serviceExecutable, serviceEUID
	t.Cleanup(func() { newServiceManager, serviceExecutable, serviceEUID = oldM, oldExe, oldUID })
	newServiceManager = func() *service.Manager {
		return &service.Manager{System: fakeSystemd{svc}, HomeDir: home, Geteuid: func() int { return 0 },
			Getenv: func(k string) string {
				if k == "XDG_RUNTIME_DIR" {
					return rt
				}
				return ""
			}}
	}
	serviceExecutable = func() (string, error) { return "/usr/local/bin/flm", nil }
	serviceEUID = func() int { return 0 }
	data := filepath.Join(home, ".local", "share", "flm")
	for _, sub := range []string{"install", "uninstall", "start", "stop"} {
		msg := fails(t, data, 1, "INVALID_ARGUMENT", "service", sub, "--user")
		if !strings.Contains(msg, "not root's") {
			t.Fatalf("%s: %s", sub, msg)
		}
	}
	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		t.Fatalf("root wrote into the other user's home: %v", entries)
	}
}
