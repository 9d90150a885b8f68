// Package truststore puts a root certificate into this machine's trust
// stores and takes it out again: the system store (Linux: the distribution's
// anchors directory and its update command; macOS: the System keychain;
// Windows: the machine's Root store) and the NSS databases Firefox and
// Chromium use on Linux and macOS, where certutil exists.
//
// Both operations are idempotent (installing twice leaves one entry;
// uninstalling what is absent changes nothing) and report every change they
// made: files written or removed and commands run, so the CLI can print
// exactly that. Nothing here escalates privileges: the system store needs
// root/administrator, and without it Install and Uninstall return
// ErrNeedsPrivilege before changing anything.
//
// github.com/smallstep/truststore (what mkcert uses) was considered and not
// used: it runs `sudo` by itself, chooses its paths at init from the real
// file system, and does not report what it changed.
package truststore

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os/exec"
	"strings"
)

// ErrNeedsPrivilege: the system trust store can only be changed by root
// (Administrator on Windows).
var ErrNeedsPrivilege = errors.New("changing the system trust store needs administrator privileges")

// ErrUnsupported: no system trust store FLM knows how to change.
var ErrUnsupported = errors.New("no supported system trust store on this machine")

// Change is one thing Install or Uninstall did.
type Change struct {
	// Action is "wrote" or "removed" (Path), or "ran" (Command).
	Action  string `json:"action"`
	Path    string `json:"path,omitempty"`
	Command string `json:"command,omitempty"`
}

// Result lists what changed, in order, and notes for the user (stores
// skipped and why, entries already present).
type Result struct {
	Changes []Change `json:"changes"`
	Notes   []string `json:"notes"`
}

// Options adapt the operations to tests. The zero value is the real
// machine.
type Options struct {
	// Root prefixes every system path (tests; "" = the real file system).
	Root string
	// Home is the home directory whose NSS databases are updated ("" =
	// the invoking user's: $SUDO_USER's under sudo, else the current
	// user's).
	Home string
	// Run runs a command and returns its combined output (nil = os/exec).
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	// LookPath finds a command (nil = exec.LookPath).
	LookPath func(string) (string, error)
	// Privileged reports whether the process may change the system store
	// (nil = euid 0 / an elevated token).
	Privileged func() bool
	// SkipSystem leaves the system store alone (NSS only; tests).
	SkipSystem bool
}

func (o Options) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if o.Run != nil {
		return o.Run(ctx, name, args...)
	}
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

func (o Options) privileged() bool {
	if o.Privileged != nil {
		return o.Privileged()
	}
	return isPrivileged()
}

func (r *Result) ran(name string, args ...string) {
	r.Changes = append(r.Changes, Change{Action: "ran", Command: strings.Join(append([]string{name}, args...), " ")})
}

func (r *Result) note(s string) { r.Notes = append(r.Notes, s) }

// Name is the file name stem FLM gives a root: "flm-" and the first 16 hex
// digits of its SHA-256 fingerprint.
func Name(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return "flm-" + hex.EncodeToString(sum[:8])
}

func certPEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// Install puts cert into the system store and the NSS databases found.
func Install(ctx context.Context, cert *x509.Certificate, o Options) (Result, error) {
	var r Result
	if !o.SkipSystem {
		if !o.privileged() {
			return r, ErrNeedsPrivilege
		}
		if err := installSystem(ctx, cert, o, &r); err != nil {
			return r, err
		}
	}
	err := nssInstall(ctx, cert, o, &r)
	return r, err
}

// Uninstall takes cert out of the system store and the NSS databases.
func Uninstall(ctx context.Context, cert *x509.Certificate, o Options) (Result, error) {
	var r Result
	if !o.SkipSystem {
		if !o.privileged() {
			return r, ErrNeedsPrivilege
		}
		if err := uninstallSystem(ctx, cert, o, &r); err != nil {
			return r, err
		}
	}
	err := nssUninstall(ctx, cert, o, &r)
	return r, err
}
