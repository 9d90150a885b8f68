package keychain_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/unjuno/flm/cli/internal/keychain"
	"github.com/unjuno/flm/cli/internal/keychain/keyringtest"
	"github.com/unjuno/flm/core/secret"
	"github.com/unjuno/flm/core/secret/secrettest"
)

var scopeN atomic.Int64

func newScope() string { return fmt.Sprintf("/data/dir-%d", scopeN.Add(1)) }

// The real gnome-keyring, through its D-Bus API.
func TestSecretServiceConformance(t *testing.T) {
	s := keyringtest.Start(t)
	secrettest.Run(t, func(t *testing.T) secret.Store {
		return &keychain.SecretService{Scope: newScope(), Getenv: s.Getenv(nil)}
	})
}

func TestSecretServiceScopesDataDirs(t *testing.T) {
	ctx := context.Background()
	s := keyringtest.Start(t)
	a := &keychain.SecretService{Scope: "/home/u/.local/share/flm", Getenv: s.Getenv(nil)}
	b := &keychain.SecretService{Scope: "/srv/flm", Getenv: s.Getenv(nil)}
	if err := a.Put(ctx, "security.key", []byte("aaaa")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "security.key"); !errors.Is(err, secret.ErrNotFound) {
		t.Fatalf("another data dir sees the key: %v", err)
	}
	if err := b.Put(ctx, "security.key", []byte("bbbb")); err != nil {
		t.Fatal(err)
	}
	if v, err := a.Get(ctx, "security.key"); err != nil || string(v) != "aaaa" {
		t.Fatalf("a's key after b stored its own = %q, %v", v, err)
	}
	// What a user sees in the keyring: labelled, no value in the label.
	if got := a.Name(); got != "Secret Service" {
		t.Fatalf("Name = %q", got)
	}
}

// A keyring that locked itself (screen lock, timeout) is reported as locked,
// never as "not found" (which would make flm create a new key) and never
// unlocked by a prompt nobody answers.
func TestSecretServiceLocked(t *testing.T) {
	ctx := context.Background()
	s := keyringtest.Start(t)
	ss := &keychain.SecretService{Scope: newScope(), Getenv: s.Getenv(nil), Timeout: 5 * time.Second}
	if err := ss.Put(ctx, "security.key", []byte("k1")); err != nil {
		t.Fatal(err)
	}
	if err := ss.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := ss.Get(ctx, "security.key"); !errors.Is(err, secret.ErrLocked) || !strings.Contains(err.Error(), "unlock") {
		t.Fatalf("Get on a locked keyring = %v; want ErrLocked with advice", err)
	}
	if err := ss.Put(ctx, "security.key", []byte("k2")); !errors.Is(err, secret.ErrLocked) {
		t.Fatalf("Put on a locked keyring = %v; want ErrLocked", err)
	}
	if err := ss.Delete(ctx, "security.key"); !errors.Is(err, secret.ErrLocked) {
		t.Fatalf("Delete on a locked keyring = %v; want ErrLocked", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("locked keyring calls took %v; they must not wait for a prompt", d)
	}
}

func TestSecretServiceAbsent(t *testing.T) {
	ctx := context.Background()
	for name, env := range map[string]map[string]string{
		"no bus":        {},
		"dead bus":      {"DBUS_SESSION_BUS_ADDRESS": "unix:path=" + filepath.Join(t.TempDir(), "nothing")},
		"runtime dir":   {"XDG_RUNTIME_DIR": t.TempDir()},
		"garbage addrs": {"DBUS_SESSION_BUS_ADDRESS": "nonsense:"},
	} {
		t.Run(name, func(t *testing.T) {
			ss := &keychain.SecretService{Scope: "/x", Getenv: func(k string) string { return env[k] }}
			if _, err := ss.Get(ctx, "security.key"); !errors.Is(err, secret.ErrUnavailable) {
				t.Fatalf("Get = %v; want ErrUnavailable", err)
			}
			if err := ss.Put(ctx, "security.key", []byte("v")); !errors.Is(err, secret.ErrUnavailable) {
				t.Fatalf("Put = %v; want ErrUnavailable", err)
			}
		})
	}
}

// A session bus where nothing provides org.freedesktop.secrets (a desktop
// without a keyring, a container with a bus) is "unavailable", not an error
// that would stop flm from using its fallback.
func TestSecretServiceBusWithoutKeyring(t *testing.T) {
	addr := keyringtest.StartBus(t)
	ss := &keychain.SecretService{Scope: "/x", Getenv: func(k string) string {
		if k == "DBUS_SESSION_BUS_ADDRESS" {
			return addr
		}
		return ""
	}}
	if _, err := ss.Get(context.Background(), "security.key"); !errors.Is(err, secret.ErrUnavailable) || !strings.Contains(err.Error(), "no Secret Service") {
		t.Fatalf("Get on a bus without a keyring = %v; want ErrUnavailable (no Secret Service)", err)
	}
}

// hungService owns org.freedesktop.secrets on a bus and never answers: a
// keyring daemon stuck on something.
type hungService struct{ release chan struct{} }

func (h hungService) SearchItems(map[string]string) ([]dbus.ObjectPath, []dbus.ObjectPath, *dbus.Error) {
	<-h.release
	return nil, nil, nil
}

func (h hungService) ReadAlias(string) (dbus.ObjectPath, *dbus.Error) {
	<-h.release
	return "/", nil
}

// Review finding 9: a keyring that does not answer is there, just hung.
// It must be ErrTimeout (flm stops with DB_KEY_UNAVAILABLE), never
// ErrUnavailable, which would make flm fall back to a key file, or create
// one.
func TestSecretServiceHungIsATimeout(t *testing.T) {
	addr := keyringtest.StartBus(t)
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := hungService{release: make(chan struct{})}
	defer close(h.release)
	if err := conn.Export(h, "/org/freedesktop/secrets", "org.freedesktop.Secret.Service"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName("org.freedesktop.secrets", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own the name: %v %v", reply, err)
	}
	ss := &keychain.SecretService{Scope: "/x", Timeout: 300 * time.Millisecond, Getenv: func(k string) string {
		if k == "DBUS_SESSION_BUS_ADDRESS" {
			return addr
		}
		return ""
	}}
	start := time.Now()
	_, err = ss.Get(context.Background(), "security.key")
	if !errors.Is(err, secret.ErrTimeout) || errors.Is(err, secret.ErrUnavailable) {
		t.Fatalf("Get from a hung Secret Service = %v; want ErrTimeout", err)
	}
	if err := ss.Put(context.Background(), "security.key", []byte("v")); !errors.Is(err, secret.ErrTimeout) {
		t.Fatalf("Put to a hung Secret Service = %v; want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the calls took %v; the timeout is 300 ms each", d)
	}
}

func TestFileConformance(t *testing.T) {
	secrettest.Run(t, func(t *testing.T) secret.Store { return keychain.File{Dir: t.TempDir()} })
}

func TestFileModeAndShred(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f := keychain.File{Dir: dir}
	if err := f.Put(ctx, "security.key", []byte("abcd")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "security.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	for _, bad := range []string{"../escape", "a/b", "", ".hidden", "UPPER"} {
		if err := f.Put(ctx, bad, []byte("v")); err == nil {
			t.Errorf("Put(%q) accepted a name that is not a plain file name", bad)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("%d files in the dir after Put; temporary files left behind", len(ents))
	}
	if err := f.Delete(ctx, "security.key"); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("Delete left %v", ents)
	}
}
