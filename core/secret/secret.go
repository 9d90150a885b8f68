// Package secret is the port for secrets FLM keeps outside its own files:
// today one, the key that encrypts security.db. The OS keychain (Secret
// Service, macOS Keychain, Windows Credential Manager) implements it; so do
// the explicit fallbacks (a 0600 key file, an environment variable).
//
// Security: a value is a secret. Implementations never log it, never put it
// in an error message, and callers drop their copy as soon as they can.
package secret

import (
	"context"
	"errors"
)

// The errors a Store returns, for callers to branch on with errors.Is.
// Adapters wrap them with a message that says what to do.
var (
	// ErrNotFound: the store works but holds no secret of that name.
	ErrNotFound = errors.New("secret not found")
	// ErrUnavailable: there is no such store here (no keychain service, no
	// D-Bus session, an unsupported OS). A caller may choose an explicit
	// fallback; it is never the same as ErrNotFound.
	ErrUnavailable = errors.New("secret store unavailable")
	// ErrLocked: the store exists but is locked and would need the user to
	// unlock it. A caller must not fall back to a weaker store on this.
	ErrLocked = errors.New("secret store locked")
	// ErrTimeout: the store exists but did not answer in time (a hung
	// keyring daemon). Like ErrLocked, never a reason to fall back.
	ErrTimeout = errors.New("secret store did not answer")
	// ErrReadOnly: the store can be read but not written (a key given in
	// the environment).
	ErrReadOnly = errors.New("secret store is read-only")
)

// MaxValueBytes is the largest value every store must accept.
const MaxValueBytes = 1024

// Store holds named secrets.
//
// Names are short ASCII identifiers ("security.key"); an adapter scopes them
// to one FLM data dir itself. Values are printable text (no NUL, no
// newline) of at most MaxValueBytes bytes; a store may refuse anything else.
// Methods are safe for concurrent use, honour ctx, and return the errors
// above (wrapped) rather than adapter-specific ones.
type Store interface {
	// Get returns the value stored under name, or ErrNotFound.
	Get(ctx context.Context, name string) ([]byte, error)
	// Put stores value under name, replacing any previous value. When it
	// returns nil the value survives a crash of the calling process.
	Put(ctx context.Context, name string, value []byte) error
	// Delete removes name; ErrNotFound if there was nothing to remove.
	Delete(ctx context.Context, name string) error
}

// ValidValue reports whether v is a value every Store must accept.
func ValidValue(v []byte) bool {
	if len(v) == 0 || len(v) > MaxValueBytes {
		return false
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
