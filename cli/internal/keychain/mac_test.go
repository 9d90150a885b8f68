package keychain_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unjuno/flm/cli/internal/keychain"
	"github.com/unjuno/flm/core/secret"
	"github.com/unjuno/flm/core/secret/secrettest"
)

// standIn is a shell stand-in for /usr/bin/security that behaves like the
// real tool for the commands flm uses (same messages and exit status 44 for
// a missing item), storing items as files. It logs every argument vector.
const standIn = `#!/bin/bash
store=$(dirname "$0")/items
mkdir -p "$store"
echo "ARGV: $*" >> "$(dirname "$0")/argv.log"
[ -f "$(dirname "$0")/locked" ] && { echo "security: SecKeychainItemCopyContent: User interaction is not allowed." >&2; exit 36; }
key() { printf '%s' "$1|$2" | od -An -tx1 | tr -d ' \n'; }
do_cmd() {
  cmd=$1; shift
  local s= a= w= printw=
  while [ $# -gt 0 ]; do
    case $1 in
      -s) s=$2; shift 2;; -a) a=$2; shift 2;; -l) shift 2;; -w) if [ $# -ge 2 ]; then w=$2; shift 2; else printw=1; shift; fi;;
      -U) shift;; *) echo "unknown flag $1" >&2; exit 2;;
    esac
  done
  f="$store/$(key "$s" "$a")"
  case $cmd in
    add-generic-password) printf '%s' "$w" > "$f";;
    find-generic-password) [ -f "$f" ] || { echo "security: SecKeychainSearchCopyNext: The specified item could not be found in the keychain." >&2; exit 44; }; cat "$f"; echo;;
    delete-generic-password) [ -f "$f" ] || { echo "security: SecKeychainSearchCopyNext: The specified item could not be found in the keychain." >&2; exit 44; }; rm "$f";;
  esac
}
if [ "$1" = -i ]; then
  while IFS= read -r line; do eval "set -- $line"; do_cmd "$@"; done
else
  do_cmd "$@"
fi
`

func macStandIn(t *testing.T) (*keychain.MacKeychain, string) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is needed for the security stand-in")
	}
	dir := t.TempDir()
	tool := filepath.Join(dir, "security")
	if err := os.WriteFile(tool, []byte(standIn), 0o700); err != nil {
		t.Fatal(err)
	}
	return &keychain.MacKeychain{Scope: "/Users/u/Library/Application Support/flm", Path: tool}, dir
}

func TestMacKeychainAgainstStandIn(t *testing.T) {
	var dirs []string
	secrettest.Run(t, func(t *testing.T) secret.Store {
		m, dir := macStandIn(t)
		dirs = append(dirs, dir)
		return m
	})
	// No value ever reached an argument vector (ps would show it).
	for _, d := range dirs {
		log, _ := os.ReadFile(filepath.Join(d, "argv.log"))
		for _, v := range []string{"0123456789abcdef", "with spaces", "stable"} {
			if strings.Contains(string(log), v) {
				t.Fatalf("a secret value was passed as an argument: %s", log)
			}
		}
	}
}

func TestMacKeychainLockedAndMissingTool(t *testing.T) {
	ctx := context.Background()
	m, dir := macStandIn(t)
	if err := m.Put(ctx, "security.key", []byte("k")); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "locked"), nil, 0o600)
	if _, err := m.Get(ctx, "security.key"); !errors.Is(err, secret.ErrLocked) {
		t.Fatalf("Get on a locked keychain = %v; want ErrLocked", err)
	}
	gone := &keychain.MacKeychain{Scope: "/x", Path: filepath.Join(dir, "no-such-tool")}
	if _, err := gone.Get(ctx, "security.key"); !errors.Is(err, secret.ErrUnavailable) {
		t.Fatalf("Get without the tool = %v; want ErrUnavailable", err)
	}
	if m.Name() != "macOS Keychain" {
		t.Fatal(m.Name())
	}
}
