//go:build windows

package keychain

import (
	"context"
	"errors"

	"github.com/danieljoos/wincred"
)

var _ Generic = (*WinCred)(nil)

// GetGeneric implements Generic. The Rust keyring crate names a Windows
// generic credential "<account>.<service>".
func (w *WinCred) GetGeneric(ctx context.Context, service, account string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := wincred.GetGenericCredential(account + "." + service)
	if err != nil {
		return nil, winError(service+"/"+account, err, errors.Is(err, wincred.ErrElementNotFound))
	}
	return append([]byte(nil), c.CredentialBlob...), nil
}
