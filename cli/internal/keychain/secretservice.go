package keychain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/unjuno/flm/core/secret"
)

// SecretService is the freedesktop Secret Service API
// (https://specifications.freedesktop.org/secret-service/) over the D-Bus
// session bus: gnome-keyring, KWallet, KeePassXC.
//
// Items live in the default collection (the login keyring), with the
// attributes application=flm, flm_data_dir=<Scope>, flm_secret=<name>.
// The secret travels in a "plain" session: over the session bus's Unix
// socket, which only this user can open.
type SecretService struct {
	// Scope is the absolute data dir the items belong to.
	Scope string
	// Getenv supplies DBUS_SESSION_BUS_ADDRESS and XDG_RUNTIME_DIR;
	// nil = os.Getenv.
	Getenv func(string) string
	// Timeout bounds one operation (default 10 s): a hung keyring daemon
	// must not hang flm. Running out of it is secret.ErrTimeout, never
	// ErrUnavailable: the keychain is there, so flm must not fall back.
	Timeout time.Duration
}

var _ OS = (*SecretService)(nil)

const (
	ssDest       = "org.freedesktop.secrets"
	ssPath       = dbus.ObjectPath("/org/freedesktop/secrets")
	ssIface      = "org.freedesktop.Secret.Service"
	ssItem       = "org.freedesktop.Secret.Item"
	ssCollection = "org.freedesktop.Secret.Collection"
	noPrompt     = dbus.ObjectPath("/")
)

// Name implements OS.
func (s *SecretService) Name() string { return "Secret Service" }

// ssSecret is the Secret Service's Secret struct, signature (oayays).
type ssSecret struct {
	Session     dbus.ObjectPath
	Parameters  []byte
	Value       []byte
	ContentType string
}

func (s *SecretService) getenv(k string) string {
	if s.Getenv != nil {
		return s.Getenv(k)
	}
	return os.Getenv(k)
}

// busAddress finds the session bus without autolaunching one: a bus
// started just for flm would hold no keyring.
func (s *SecretService) busAddress() (string, error) {
	if a := s.getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" {
		return a, nil
	}
	if rt := s.getenv("XDG_RUNTIME_DIR"); rt != "" {
		p := filepath.Join(rt, "bus")
		if st, err := os.Stat(p); err == nil && st.Mode()&os.ModeSocket != 0 {
			return "unix:path=" + p, nil
		}
	}
	return "", fmt.Errorf("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set): %w", secret.ErrUnavailable)
}

type ssConn struct {
	ctx  context.Context
	conn *dbus.Conn
}

// session connects to the bus for one operation.
func (s *SecretService) session(ctx context.Context, fn func(c *ssConn) error) error {
	addr, err := s.busAddress()
	if err != nil {
		return err
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := dbus.Connect(addr, dbus.WithContext(ctx))
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("the D-Bus session bus did not answer within %v: %w", timeout, secret.ErrTimeout)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("connect to the D-Bus session bus: %w", ctx.Err())
		}
		return fmt.Errorf("connect to the D-Bus session bus: %v: %w", err, secret.ErrUnavailable)
	}
	defer conn.Close()
	return fn(&ssConn{ctx: ctx, conn: conn})
}

func (c *ssConn) call(path dbus.ObjectPath, method string, args []any, out ...any) error {
	call := c.conn.Object(ssDest, path).CallWithContext(c.ctx, method, 0, args...)
	if call.Err != nil {
		// The connection shares the operation's deadline: when it passes,
		// godbus may close the connection first, and the call then fails
		// with "use of closed network connection" rather than the deadline.
		if errors.Is(c.ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("the Secret Service did not answer %s in time: %w", method, secret.ErrTimeout)
		}
		return classifyDBus(method, call.Err)
	}
	if len(out) == 0 {
		return nil
	}
	if err := call.Store(out...); err != nil {
		return fmt.Errorf("%s: unexpected reply: %w", method, err)
	}
	return nil
}

// classifyDBus maps bus errors to the port's sentinels. The bus never sees
// a secret in an error, but the message is still cut short.
func classifyDBus(method string, err error) error {
	name := ""
	var de dbus.Error
	var dep *dbus.Error
	switch {
	case errors.As(err, &de):
		name = de.Name
	case errors.As(err, &dep):
		name = dep.Name
	}
	switch name {
	case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
		"org.freedesktop.DBus.Error.Spawn.ServiceNotFound", "org.freedesktop.DBus.Error.Spawn.ChildExited",
		"org.freedesktop.DBus.Error.NoServer", "org.freedesktop.DBus.Error.Disconnected":
		return fmt.Errorf("no Secret Service on the session bus (%s): %w", name, secret.ErrUnavailable)
	case "org.freedesktop.Secret.Error.IsLocked":
		return fmt.Errorf("%s: %w", method, errLocked)
	case "org.freedesktop.Secret.Error.NoSuchObject":
		return fmt.Errorf("%s: %w", method, secret.ErrNotFound)
	case "org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Timeout", "org.freedesktop.DBus.Error.TimedOut":
		return fmt.Errorf("the Secret Service did not answer %s (%s): %w", method, name, secret.ErrTimeout)
	}
	// A service that is there but does not answer is hung, not absent:
	// ErrUnavailable would let flm fall back to the key file.
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("the Secret Service did not answer %s in time: %w", method, secret.ErrTimeout)
	}
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return fmt.Errorf("the Secret Service failed %s: %s", method, msg)
}

var errLocked = fmt.Errorf("the keyring is locked; unlock it (log in to the desktop session, or `gnome-keyring-daemon --unlock`) and retry: %w", secret.ErrLocked)

func (s *SecretService) attrs(name string) map[string]string {
	return map[string]string{"application": Service, "flm_data_dir": s.Scope, "flm_secret": name}
}

// unlock unlocks objects if that needs no prompt; a prompt means the user
// must unlock the keyring, which flm never asks for (see package doc).
func (c *ssConn) unlock(objs []dbus.ObjectPath) error {
	var unlocked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	if err := c.call(ssPath, ssIface+".Unlock", []any{objs}, &unlocked, &prompt); err != nil {
		return err
	}
	if prompt != noPrompt && prompt != "" {
		_ = c.conn.Object(ssDest, prompt).CallWithContext(c.ctx, "org.freedesktop.Secret.Prompt.Dismiss", 0).Err
		return errLocked
	}
	if len(unlocked) < len(objs) {
		return errLocked
	}
	return nil
}

func (c *ssConn) search(attrs map[string]string) ([]dbus.ObjectPath, error) {
	var unlocked, locked []dbus.ObjectPath
	if err := c.call(ssPath, ssIface+".SearchItems", []any{attrs}, &unlocked, &locked); err != nil {
		return nil, err
	}
	if len(locked) > 0 {
		if err := c.unlock(locked); err != nil {
			return nil, err
		}
	}
	return append(unlocked, locked...), nil
}

func (c *ssConn) openSession() (dbus.ObjectPath, func(), error) {
	var out dbus.Variant
	var path dbus.ObjectPath
	if err := c.call(ssPath, ssIface+".OpenSession", []any{"plain", dbus.MakeVariant("")}, &out, &path); err != nil {
		return "", nil, err
	}
	return path, func() {
		_ = c.conn.Object(ssDest, path).CallWithContext(c.ctx, "org.freedesktop.Secret.Session.Close", 0).Err
	}, nil
}

// defaultCollection is the keyring new items go to: the "default" alias,
// else the login keyring (gnome-keyring sets the alias a moment after it
// unlocks the login keyring at session start).
func (c *ssConn) defaultCollection() (dbus.ObjectPath, error) {
	for _, alias := range []string{"default", "login"} {
		var coll dbus.ObjectPath
		if err := c.call(ssPath, ssIface+".ReadAlias", []any{alias}, &coll); err != nil {
			return "", err
		}
		if coll != noPrompt && coll != "" {
			return coll, nil
		}
	}
	return "", fmt.Errorf("the Secret Service has no default keyring: %w", secret.ErrUnavailable)
}

// Get implements secret.Store.
func (s *SecretService) Get(ctx context.Context, name string) ([]byte, error) {
	var val []byte
	err := s.session(ctx, func(c *ssConn) error {
		items, err := c.search(s.attrs(name))
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return fmt.Errorf("%s for %s: %w", name, s.Scope, secret.ErrNotFound)
		}
		sess, closeSess, err := c.openSession()
		if err != nil {
			return err
		}
		defer closeSess()
		var secrets map[dbus.ObjectPath]ssSecret
		if err := c.call(ssPath, ssIface+".GetSecrets", []any{items[:1], sess}, &secrets); err != nil {
			return err
		}
		sec, ok := secrets[items[0]]
		if !ok {
			return fmt.Errorf("%s for %s: %w", name, s.Scope, secret.ErrNotFound)
		}
		val = sec.Value
		return nil
	})
	return val, err
}

// Put implements secret.Store: the item is created or replaced in the
// default collection.
func (s *SecretService) Put(ctx context.Context, name string, value []byte) error {
	if !secret.ValidValue(value) {
		return fmt.Errorf("%s: value is not printable text of 1..%d bytes", name, secret.MaxValueBytes)
	}
	return s.session(ctx, func(c *ssConn) error {
		coll, err := c.defaultCollection()
		if err != nil {
			return err
		}
		locked, err := c.conn.Object(ssDest, coll).GetProperty(ssCollection + ".Locked")
		if err != nil {
			return classifyDBus("read keyring state", err)
		}
		if b, ok := locked.Value().(bool); ok && b {
			if err := c.unlock([]dbus.ObjectPath{coll}); err != nil {
				return err
			}
		}
		sess, closeSess, err := c.openSession()
		if err != nil {
			return err
		}
		defer closeSess()
		props := map[string]dbus.Variant{
			ssItem + ".Label":      dbus.MakeVariant(label(s.Scope, name)),
			ssItem + ".Attributes": dbus.MakeVariant(s.attrs(name)),
		}
		sec := ssSecret{Session: sess, Parameters: []byte{}, Value: value, ContentType: "text/plain"}
		var item, prompt dbus.ObjectPath
		if err := c.call(coll, ssCollection+".CreateItem", []any{props, sec, true}, &item, &prompt); err != nil {
			return err
		}
		if prompt != noPrompt && prompt != "" {
			_ = c.conn.Object(ssDest, prompt).CallWithContext(c.ctx, "org.freedesktop.Secret.Prompt.Dismiss", 0).Err
			return errLocked
		}
		return nil
	})
}

// Delete implements secret.Store.
func (s *SecretService) Delete(ctx context.Context, name string) error {
	return s.session(ctx, func(c *ssConn) error {
		items, err := c.search(s.attrs(name))
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return fmt.Errorf("%s for %s: %w", name, s.Scope, secret.ErrNotFound)
		}
		for _, it := range items {
			var prompt dbus.ObjectPath
			if err := c.call(it, ssItem+".Delete", nil, &prompt); err != nil {
				return err
			}
			if prompt != noPrompt && prompt != "" {
				_ = c.conn.Object(ssDest, prompt).CallWithContext(c.ctx, "org.freedesktop.Secret.Prompt.Dismiss", 0).Err
				return errLocked
			}
		}
		return nil
	})
}

// Lock locks the default collection. Tests use it to play a keyring that
// locked itself (screen lock, timeout) while flm was not running.
func (s *SecretService) Lock(ctx context.Context) error {
	return s.session(ctx, func(c *ssConn) error {
		coll, err := c.defaultCollection()
		if err != nil {
			return err
		}
		var locked []dbus.ObjectPath
		var prompt dbus.ObjectPath
		if err := c.call(ssPath, ssIface+".Lock", []any{[]dbus.ObjectPath{coll}}, &locked, &prompt); err != nil {
			return err
		}
		if prompt != noPrompt && prompt != "" {
			return fmt.Errorf("locking the keyring needs a prompt")
		}
		return nil
	})
}

// errString keeps adapter errors on one line.
func errString(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
