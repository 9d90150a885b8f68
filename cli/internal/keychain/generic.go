package keychain

import (
	"context"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/unjuno/flm/core/secret"
)

// Generic reads an item that another program filed under its own service
// and account names (not flm's scheme): `flm migrate legacy` reads the
// prototype's AES key, service "FLM", account "encryption_key", which the
// prototype stored with the Rust keyring crate. Read-only: flm never
// writes or deletes such items.
type Generic interface {
	// GetGeneric returns the item's secret, secret.ErrNotFound when there
	// is none, secret.ErrUnavailable when there is no keychain.
	GetGeneric(ctx context.Context, service, account string) ([]byte, error)
}

var (
	_ Generic = (*SecretService)(nil)
	_ Generic = (*MacKeychain)(nil)
)

// GetGeneric implements Generic. The Rust keyring crate files Secret
// Service items with the attributes service=<service>, username=<account>
// (plus target and application, which differ between its versions and are
// not searched on).
func (s *SecretService) GetGeneric(ctx context.Context, service, account string) ([]byte, error) {
	attrs := map[string]string{"service": service, "username": account}
	var val []byte
	err := s.session(ctx, func(c *ssConn) error {
		items, err := c.search(attrs)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return fmt.Errorf("%s/%s: %w", service, account, secret.ErrNotFound)
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
			return fmt.Errorf("%s/%s: %w", service, account, secret.ErrNotFound)
		}
		val = sec.Value
		return nil
	})
	return val, err
}

// PutGeneric files value under service/account the way the Rust keyring
// crate does. Only tests use it, to play the prototype's keychain entry.
func (s *SecretService) PutGeneric(ctx context.Context, service, account string, value []byte) error {
	return s.session(ctx, func(c *ssConn) error {
		coll, err := c.defaultCollection()
		if err != nil {
			return err
		}
		sess, closeSess, err := c.openSession()
		if err != nil {
			return err
		}
		defer closeSess()
		props := map[string]dbus.Variant{
			ssItem + ".Label":      dbus.MakeVariant("Password for '" + account + "' on '" + service + "'"),
			ssItem + ".Attributes": dbus.MakeVariant(map[string]string{"service": service, "username": account, "target": "default", "application": "rust-keyring"}),
		}
		sec := ssSecret{Session: sess, Parameters: []byte{}, Value: value, ContentType: "text/plain"}
		var item, prompt dbus.ObjectPath
		if err := c.call(coll, ssCollection+".CreateItem", []any{props, sec, true}, &item, &prompt); err != nil {
			return err
		}
		if prompt != noPrompt && prompt != "" {
			return errLocked
		}
		return nil
	})
}

// GetGeneric implements Generic with find-generic-password.
func (m *MacKeychain) GetGeneric(ctx context.Context, service, account string) ([]byte, error) {
	out, err := m.run(ctx, "", "find-generic-password", "-s", service, "-a", account, "-w")
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", service, account, err)
	}
	return []byte(strings.TrimRight(string(out), "\r\n")), nil
}
