//go:build linux

package truststore

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// distro is one Linux family's way to trust a root.
type distro struct {
	name    string
	anchors string   // directory the administrator drops roots in
	ext     string   // file extension the update command picks up
	update  []string // the command that rebuilds the bundle
	bundle  string   // the bundle it rebuilds (to check the outcome)
	// links is where the update command links each root (Debian:
	// /etc/ssl/certs/<name>.pem and its OpenSSL hash link), which it does
	// not remove when the root goes ("" = none).
	links string
}

// distros, first match wins (Fedora first: some Fedora-likes also have a
// Debian-style directory).
var distros = []distro{
	{"fedora", "/etc/pki/ca-trust/source/anchors", ".pem", []string{"update-ca-trust", "extract"}, "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", ""},
	{"debian", "/usr/local/share/ca-certificates", ".crt", []string{"update-ca-certificates"}, "/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs"},
	{"suse", "/usr/share/pki/trust/anchors", ".crt", []string{"update-ca-certificates"}, "/var/lib/ca-certificates/ca-bundle.pem", ""},
	{"arch", "/etc/ca-certificates/trust-source/anchors", ".crt", []string{"trust", "extract-compat"}, "/etc/ssl/certs/ca-certificates.crt", ""},
}

func isPrivileged() bool { return os.Geteuid() == 0 }

// SudoHint is how to run a command with the needed privileges.
func SudoHint(cmd string) string { return "sudo " + cmd }

func (o Options) path(p string) string { return filepath.Join(o.Root, p) }

func (o Options) distro() (distro, error) {
	for _, d := range distros {
		if fi, err := os.Stat(o.path(d.anchors)); err == nil && fi.IsDir() {
			if _, err := o.lookPath(d.update[0]); err == nil {
				return d, nil
			}
		}
	}
	return distro{}, fmt.Errorf("%w: none of %s exists with its update command (install the ca-certificates package)", ErrUnsupported, anchorsList())
}

func anchorsList() string {
	var s []string
	for _, d := range distros {
		s = append(s, d.anchors)
	}
	return strings.Join(s, ", ")
}

// SystemFile is where Install puts cert on this machine ("" if no store is
// supported), for the consent prompt.
func SystemFile(cert *x509.Certificate, o Options) string {
	d, err := o.distro()
	if err != nil {
		return ""
	}
	return o.path(filepath.Join(d.anchors, Name(cert)+d.ext))
}

func (o Options) inBundle(d distro, cert *x509.Certificate) bool {
	data, err := os.ReadFile(o.path(d.bundle))
	return err == nil && bundleHas(data, cert)
}

func (o Options) update(ctx context.Context, d distro, r *Result) error {
	if out, err := o.run(ctx, d.update[0], d.update[1:]...); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(d.update, " "), err, strings.TrimSpace(string(out)))
	}
	r.ran(d.update[0], d.update[1:]...)
	return nil
}

func installSystem(ctx context.Context, cert *x509.Certificate, o Options, r *Result) error {
	d, err := o.distro()
	if err != nil {
		return err
	}
	file := o.path(filepath.Join(d.anchors, Name(cert)+d.ext))
	data := certPEM(cert)
	old, err := os.ReadFile(file)
	same := err == nil && bytes.Equal(old, data)
	if same && o.inBundle(d, cert) {
		r.note("already trusted: " + file)
		return nil
	}
	if !same {
		if err := writeFile(file, data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", file, err)
		}
		r.Changes = append(r.Changes, Change{Action: "wrote", Path: file})
	}
	if err := o.update(ctx, d, r); err != nil {
		return err
	}
	if !o.inBundle(d, cert) {
		return fmt.Errorf("%s ran, but the root is not in %s", strings.Join(d.update, " "), o.path(d.bundle))
	}
	return nil
}

func uninstallSystem(ctx context.Context, cert *x509.Certificate, o Options, r *Result) error {
	d, err := o.distro()
	if err != nil {
		return err
	}
	file := o.path(filepath.Join(d.anchors, Name(cert)+d.ext))
	err = os.Remove(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !o.inBundle(d, cert) {
			return nil
		}
		// The file went, the bundle was not rebuilt: finish the job.
	case err != nil:
		return fmt.Errorf("remove %s: %w", file, err)
	default:
		r.Changes = append(r.Changes, Change{Action: "removed", Path: file})
	}
	if err := o.removeLinks(d, cert, file, r); err != nil {
		return err
	}
	if err := o.update(ctx, d, r); err != nil {
		return err
	}
	if o.inBundle(d, cert) {
		return fmt.Errorf("%s ran, but the root is still in %s", strings.Join(d.update, " "), o.path(d.bundle))
	}
	return nil
}

// removeLinks removes the links the update command made for file: the
// "<name>.pem" link to it and the OpenSSL hash links ("xxxxxxxx.N") to
// that, and nothing else.
func (o Options) removeLinks(d distro, cert *x509.Certificate, file string, r *Result) error {
	if d.links == "" {
		return nil
	}
	dir := o.path(d.links)
	named := Name(cert) + ".pem"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		p := filepath.Join(dir, e.Name())
		target, err := os.Readlink(p)
		if err != nil {
			continue
		}
		mine := e.Name() == named && (target == file || target == filepath.Join(d.anchors, filepath.Base(file))) ||
			target == named || target == filepath.Join(dir, named) || target == filepath.Join(d.links, named)
		if !mine {
			continue
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
		r.Changes = append(r.Changes, Change{Action: "removed", Path: p})
	}
	return nil
}

// writeFile writes data with mode perm via a temporary file and a rename.
func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".flm-tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// bundleHas reports whether the PEM bundle data holds cert.
func bundleHas(data []byte, cert *x509.Certificate) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if b.Type == "CERTIFICATE" && string(b.Bytes) == string(cert.Raw) {
			return true
		}
	}
}
