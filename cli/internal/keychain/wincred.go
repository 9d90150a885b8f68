package keychain

import (
	"fmt"

	"github.com/unjuno/flm/core/secret"
)

// winTarget is a credential's target name: unique per data dir and secret,
// and recognisable in the Credential Manager's list.
func winTarget(scope, name string) string { return Service + ":" + name + "@" + scope }

// winError maps a Credential Manager failure; notFound is ERROR_NOT_FOUND.
func winError(name string, err error, notFound bool) error {
	if notFound {
		return fmt.Errorf("%s: %w", name, secret.ErrNotFound)
	}
	return fmt.Errorf("%s: Windows Credential Manager: %v", name, err)
}
