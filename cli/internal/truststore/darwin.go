//go:build darwin

package truststore

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
)

const systemKeychain = "/Library/Keychains/System.keychain"

func isPrivileged() bool { return os.Geteuid() == 0 }

// SudoHint is how to run a command with the needed privileges.
func SudoHint(cmd string) string { return "sudo " + cmd }

// SystemFile is where Install puts cert (the System keychain).
func SystemFile(*x509.Certificate, Options) string { return systemKeychain }

func keychainHas(ctx context.Context, o Options, cert *x509.Certificate) bool {
	out, err := o.run(ctx, "security", "find-certificate", "-a", "-Z", systemKeychain)
	return err == nil && strings.Contains(strings.ToUpper(string(out)), sha1Hex(cert))
}

func tempCert(cert *x509.Certificate) (string, error) {
	f, err := os.CreateTemp("", "flm-ca-*.pem")
	if err != nil {
		return "", err
	}
	_, err = f.Write(certPEM(cert))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return f.Name(), err
}

func installSystem(ctx context.Context, cert *x509.Certificate, o Options, r *Result) error {
	if keychainHas(ctx, o, cert) {
		r.note("already in " + systemKeychain)
		return nil
	}
	file, err := tempCert(cert)
	if err != nil {
		return fmt.Errorf("write a temporary certificate file: %w", err)
	}
	defer os.Remove(file)
	args := []string{"add-trusted-cert", "-d", "-r", "trustRoot", "-k", systemKeychain, file}
	if out, err := o.run(ctx, "security", args...); err != nil {
		return fmt.Errorf("security %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	r.ran("security", args...)
	return nil
}

func uninstallSystem(ctx context.Context, cert *x509.Certificate, o Options, r *Result) error {
	if !keychainHas(ctx, o, cert) {
		return nil
	}
	file, err := tempCert(cert)
	if err != nil {
		return fmt.Errorf("write a temporary certificate file: %w", err)
	}
	defer os.Remove(file)
	// Trust settings first, then the certificate itself.
	args := []string{"remove-trusted-cert", "-d", file}
	if out, err := o.run(ctx, "security", args...); err == nil {
		r.ran("security", args...)
	} else {
		r.note("security remove-trusted-cert: " + strings.TrimSpace(string(out)))
	}
	args = []string{"delete-certificate", "-Z", sha1Hex(cert), systemKeychain}
	if out, err := o.run(ctx, "security", args...); err != nil {
		return fmt.Errorf("security %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	r.ran("security", args...)
	return nil
}
