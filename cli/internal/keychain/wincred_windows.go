//go:build windows

package keychain

import (
	"context"
	"errors"
	"fmt"

	"github.com/danieljoos/wincred"

	"github.com/unjuno/flm/core/secret"
)

// WinCred is the Windows Credential Manager: generic credentials of the
// current user, encrypted by Windows with DPAPI, persisted on this machine
// only (not roamed).
type WinCred struct{ Scope string }

var _ OS = (*WinCred)(nil)

// Name implements OS.
func (w *WinCred) Name() string { return "Windows Credential Manager" }

func (w *WinCred) target(name string) string { return winTarget(w.Scope, name) }

// Get implements secret.Store.
func (w *WinCred) Get(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := wincred.GetGenericCredential(w.target(name))
	if err != nil {
		return nil, winError(name, err, errors.Is(err, wincred.ErrElementNotFound))
	}
	return append([]byte(nil), c.CredentialBlob...), nil
}

// Put implements secret.Store.
func (w *WinCred) Put(ctx context.Context, name string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !secret.ValidValue(value) {
		return fmt.Errorf("%s: value is not printable text of 1..%d bytes", name, secret.MaxValueBytes)
	}
	c := wincred.NewGenericCredential(w.target(name))
	c.UserName = Service
	c.Comment = label(w.Scope, name)
	c.CredentialBlob = append([]byte(nil), value...)
	c.Persist = wincred.PersistLocalMachine
	if err := c.Write(); err != nil {
		return winError(name, err, false)
	}
	return nil
}

// Delete implements secret.Store.
func (w *WinCred) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := wincred.GetGenericCredential(w.target(name))
	if err != nil {
		return winError(name, err, errors.Is(err, wincred.ErrElementNotFound))
	}
	if err := c.Delete(); err != nil {
		return winError(name, err, errors.Is(err, wincred.ErrElementNotFound))
	}
	return nil
}
