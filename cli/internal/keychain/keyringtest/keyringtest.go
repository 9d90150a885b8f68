// Package keyringtest starts a real, private gnome-keyring for tests: its own
// D-Bus session bus and an unlocked login keyring in a temporary directory,
// so tests exercise the real Secret Service without touching the user's
// keyring.
//
// The Debian packages are installed by `tools/scripts/keyring.sh install`.
// When they are missing the test fails under CI=true (CI must prove the
// keychain path) and is skipped, saying so, elsewhere.
package keyringtest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/cli/internal/keychain"
)

// Session is a running private keyring.
type Session struct {
	// Addr is the session bus address (DBUS_SESSION_BUS_ADDRESS).
	Addr string
	// Dir holds the bus socket and the keyring files.
	Dir string
}

// Env is what a process needs to reach this keyring: the variables to add
// to its environment.
func (s *Session) Env() []string {
	return []string{"DBUS_SESSION_BUS_ADDRESS=" + s.Addr, "XDG_RUNTIME_DIR=" + filepath.Join(s.Dir, "run")}
}

// Getenv returns an environment lookup that sees this keyring and, for
// other variables, base (nil = none).
func (s *Session) Getenv(base func(string) string) func(string) string {
	return func(k string) string {
		switch k {
		case "DBUS_SESSION_BUS_ADDRESS":
			return s.Addr
		case "XDG_RUNTIME_DIR":
			return filepath.Join(s.Dir, "run")
		}
		if base != nil {
			return base(k)
		}
		return ""
	}
}

// Require finds the keyring programs or ends the test.
func Require(t testing.TB) (dbusDaemon, keyringDaemon string) {
	t.Helper()
	var missing []string
	for _, p := range []string{"dbus-daemon", "gnome-keyring-daemon"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		msg := "the real-keyring tests need " + strings.Join(missing, ", ") + ": run `tools/scripts/keyring.sh install`"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED, NOT PASSED: " + msg)
	}
	a, _ := exec.LookPath("dbus-daemon")
	b, _ := exec.LookPath("gnome-keyring-daemon")
	return a, b
}

// busConfig is a session bus with no service activation: nothing but the
// daemon a test starts can own org.freedesktop.secrets. (With activation, a
// lookup that races the test's daemon starts a second, locked one.)
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

// StartBus starts a private session bus with no services on it and returns
// its address.
func StartBus(t testing.TB) string {
	t.Helper()
	dbusBin, _ := Require(t)
	dir, err := os.MkdirTemp("", "flmbus")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return startBus(t, dbusBin, dir)
}

func startBus(t testing.TB, dbusBin, dir string) string {
	t.Helper()
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(busConfig, filepath.Join(dir, "bus"))), 0o600); err != nil {
		t.Fatal(err)
	}
	bus := exec.Command(dbusBin, "--config-file="+conf, "--nofork", "--print-address=1")
	out, err := bus.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Start(); err != nil {
		t.Fatalf("start dbus-daemon: %v", err)
	}
	t.Cleanup(func() { _ = bus.Process.Kill(); _ = bus.Wait() })
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case addr := <-line:
		if addr == "" {
			t.Fatal("dbus-daemon printed no address")
		}
		return addr
	case <-time.After(10 * time.Second):
		t.Fatal("dbus-daemon printed no address within 10 s")
	}
	return ""
}

// Start starts a private bus and an unlocked gnome-keyring, stopped when the
// test ends.
func Start(t testing.TB) *Session {
	t.Helper()
	dbusBin, gkBin := Require(t)
	// Short path: a Unix socket path is limited to ~100 bytes.
	dir, err := os.MkdirTemp("", "flmkr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	for _, d := range []string{"run", "data", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	addr := startBus(t, dbusBin, dir)
	s := &Session{Addr: addr, Dir: dir}
	gk := exec.Command(gkBin, "--foreground", "--unlock", "--components=secrets")
	gk.Env = append(os.Environ(), append(s.Env(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "HOME="+filepath.Join(dir, "home"))...)
	gk.Stdin = strings.NewReader("pw")
	if os.Getenv("FLM_KEYRING_DEBUG") != "" {
		gk.Stdout, gk.Stderr = os.Stderr, os.Stderr
	}
	if err := gk.Start(); err != nil {
		t.Fatalf("start gnome-keyring-daemon: %v", err)
	}
	t.Cleanup(func() { _ = gk.Process.Kill(); _ = gk.Wait() })

	// Ready when the unlocked login keyring takes an item.
	ss := &keychain.SecretService{Scope: "/probe", Getenv: s.Getenv(nil), Timeout: 2 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := ss.Put(context.Background(), "probe", []byte("probe"))
		if err == nil {
			if err := ss.Delete(context.Background(), "probe"); err != nil {
				t.Fatalf("delete the probe item: %v", err)
			}
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("gnome-keyring did not come up within 15 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
