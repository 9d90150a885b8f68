//go:build !linux && !darwin && !windows

package truststore

import (
	"context"
	"crypto/x509"
	"os"
)

func isPrivileged() bool { return os.Geteuid() == 0 }

// SudoHint is how to run a command with the needed privileges.
func SudoHint(cmd string) string { return "sudo " + cmd }

// SystemFile is "" here: no system store is supported.
func SystemFile(*x509.Certificate, Options) string { return "" }

func installSystem(context.Context, *x509.Certificate, Options, *Result) error { return ErrUnsupported }
func uninstallSystem(context.Context, *x509.Certificate, Options, *Result) error {
	return ErrUnsupported
}
