//go:build windows

package truststore

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/windows"
)

func isPrivileged() bool { return windows.GetCurrentProcessToken().IsElevated() }

// SudoHint is how to run a command with the needed privileges.
func SudoHint(cmd string) string { return "run in an Administrator terminal: " + cmd }

// SystemFile is where Install puts cert (the machine's Root store).
func SystemFile(*x509.Certificate, Options) string { return `Cert:\LocalMachine\Root` }

// certutil.exe here is Windows' own tool (not NSS's).
func rootHas(ctx context.Context, o Options, cert *x509.Certificate) bool {
	_, err := o.run(ctx, "certutil.exe", "-store", "Root", sha1Hex(cert))
	return err == nil
}

func installSystem(ctx context.Context, cert *x509.Certificate, o Options, r *Result) error {
	if rootHas(ctx, o, cert) {
		r.note(`already in Cert:\LocalMachine\Root`)
		return nil
	}
	f, err := os.CreateTemp("", "flm-ca-*.cer")
	if err != nil {
		return fmt.Errorf("write a temporary certificate file: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(certPEM(cert))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	args := []string{"-addstore", "-f", "Root", f.Name()}
	if out, err := o.run(ctx, "certutil.exe", args...); err != nil {
		return fmt.Errorf("certutil.exe %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	r.ran("certutil.exe", args...)
	return nil
}

func uninstallSystem(ctx context.Context, cert *x509.Certificate, o Options, r *Result) error {
	if !rootHas(ctx, o, cert) {
		return nil
	}
	args := []string{"-delstore", "Root", sha1Hex(cert)}
	if out, err := o.run(ctx, "certutil.exe", args...); err != nil {
		return fmt.Errorf("certutil.exe %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	r.ran("certutil.exe", args...)
	return nil
}

// Firefox on Windows reads the Windows Root store (enterprise roots); NSS
// databases are not touched.
func nssInstall(context.Context, *x509.Certificate, Options, *Result) error   { return nil }
func nssUninstall(context.Context, *x509.Certificate, Options, *Result) error { return nil }
