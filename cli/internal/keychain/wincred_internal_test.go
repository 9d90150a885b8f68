package keychain

import (
	"errors"
	"testing"

	"github.com/unjuno/flm/core/secret"
)

func TestWinTargetAndErrors(t *testing.T) {
	if got := winTarget(`C:\Users\u\AppData\Local\flm`, "security.key"); got != `flm:security.key@C:\Users\u\AppData\Local\flm` {
		t.Fatalf("winTarget = %q", got)
	}
	if winTarget("/a", "security.key") == winTarget("/b", "security.key") || winTarget("/a", "security.key") == winTarget("/a", "security.key.next") {
		t.Fatal("targets of different data dirs or names collide")
	}
	if err := winError("k", errors.New("Element not found."), true); !errors.Is(err, secret.ErrNotFound) {
		t.Fatalf("not found = %v", err)
	}
	if err := winError("k", errors.New("Access is denied."), false); errors.Is(err, secret.ErrNotFound) || err == nil {
		t.Fatalf("other error = %v", err)
	}
}
