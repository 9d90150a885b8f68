package flmerr

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestCodeOfAndUserError(t *testing.T) {
	base := Wrap(fs.ErrPermission, IOError, "write %s", "config.db")
	wrapped := fmt.Errorf("open stores: %w", base)

	if got := CodeOf(wrapped); got != IOError {
		t.Fatalf("CodeOf = %q, want IO_ERROR", got)
	}
	if !errors.Is(wrapped, fs.ErrPermission) {
		t.Fatal("cause lost: errors.Is(fs.ErrPermission) = false")
	}
	if base.Error() != "write config.db: permission denied" {
		t.Fatalf("message = %q", base.Error())
	}
	if CodeOf(errors.New("plain")) != Internal {
		t.Fatal("an unclassified error must be INTERNAL")
	}
	if CodeOf(nil) != "" || Is(nil, Internal) {
		t.Fatal("nil has no code")
	}
	if !Is(New(PolicyInvalid, "x"), PolicyInvalid) {
		t.Fatal("Is(PolicyInvalid) = false")
	}
	for _, c := range []Code{EngineNotFound, PolicyInvalid, ConfigNotSet, APIKeyNotFound, InvalidArgument, DBReadOnly, DBKeyUnavailable, ProxyPortInUse} {
		if !c.UserError() {
			t.Errorf("%s must be a user error (exit 1)", c)
		}
	}
	for _, c := range []Code{DBError, MigrationFailed, IOError, Internal, ""} {
		if c.UserError() {
			t.Errorf("%q must not be a user error", c)
		}
	}
}
