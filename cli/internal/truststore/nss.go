//go:build !windows

package truststore

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
)

// home is the directory whose NSS databases are updated: the invoking
// user's, also under sudo (root's own profile is rarely the browser's).
func (o Options) home() string {
	if o.Home != "" {
		return o.Home
	}
	if su := os.Getenv("SUDO_USER"); su != "" && os.Geteuid() == 0 {
		if u, err := user.Lookup(su); err == nil && u.HomeDir != "" {
			return u.HomeDir
		}
	}
	h, _ := os.UserHomeDir()
	return h
}

// nssDBs returns the NSS databases under home, as certutil -d arguments
// ("sql:DIR" for cert9.db, "dbm:DIR" for the legacy cert8.db).
func nssDBs(home string) []string {
	if home == "" {
		return nil
	}
	dirs := []string{filepath.Join(home, ".pki", "nssdb"), filepath.Join(home, "snap", "chromium", "current", ".pki", "nssdb")}
	globs := []string{
		filepath.Join(home, ".mozilla", "firefox", "*"),
		filepath.Join(home, "snap", "firefox", "common", ".mozilla", "firefox", "*"),
	}
	if runtime.GOOS == "darwin" {
		globs = append(globs, filepath.Join(home, "Library", "Application Support", "Firefox", "Profiles", "*"))
	}
	for _, g := range globs {
		m, _ := filepath.Glob(g)
		dirs = append(dirs, m...)
	}
	var out []string
	for _, d := range dirs {
		switch {
		case exists(filepath.Join(d, "cert9.db")):
			out = append(out, "sql:"+d)
		case exists(filepath.Join(d, "cert8.db")):
			out = append(out, "dbm:"+d)
		}
	}
	return out
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func (o Options) certutil() (string, bool) {
	p, err := o.lookPath("certutil")
	return p, err == nil
}

func nssHas(ctx context.Context, o Options, certutil, db string, cert *x509.Certificate) bool {
	out, err := o.run(ctx, certutil, "-L", "-d", db, "-n", nickname(cert), "-a")
	if err != nil {
		return false
	}
	c, err := parseFirstPEM(out)
	return err == nil && c.Equal(cert)
}

func nssInstall(ctx context.Context, cert *x509.Certificate, o Options, r *Result) error {
	dbs := nssDBs(o.home())
	if len(dbs) == 0 {
		return nil
	}
	certutil, ok := o.certutil()
	if !ok {
		r.note(fmt.Sprintf("certutil not found: the NSS databases (Firefox, Chromium) %s were not updated; install it (Debian/Ubuntu: libnss3-tools, Fedora: nss-tools, macOS: brew install nss) and run install-ca again", strings.Join(dbs, ", ")))
		return nil
	}
	var file string
	for _, db := range dbs {
		if nssHas(ctx, o, certutil, db, cert) {
			r.note("already in the NSS database " + db)
			continue
		}
		if file == "" {
			f, err := os.CreateTemp("", "flm-ca-*.pem")
			if err != nil {
				return fmt.Errorf("write a temporary certificate file: %w", err)
			}
			file = f.Name()
			defer os.Remove(file)
			_, err = f.Write(certPEM(cert))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", file, err)
			}
		}
		args := []string{"-A", "-d", db, "-t", "C,,", "-n", nickname(cert), "-i", file}
		if out, err := o.run(ctx, certutil, args...); err != nil {
			return fmt.Errorf("%s %s: %w: %s", certutil, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		r.ran(certutil, args...)
	}
	return nil
}

func nssUninstall(ctx context.Context, cert *x509.Certificate, o Options, r *Result) error {
	dbs := nssDBs(o.home())
	if len(dbs) == 0 {
		return nil
	}
	certutil, ok := o.certutil()
	if !ok {
		r.note("certutil not found: the NSS databases " + strings.Join(dbs, ", ") + " were not checked")
		return nil
	}
	for _, db := range dbs {
		if !nssHas(ctx, o, certutil, db, cert) {
			continue
		}
		args := []string{"-D", "-d", db, "-n", nickname(cert)}
		if out, err := o.run(ctx, certutil, args...); err != nil {
			return fmt.Errorf("%s %s: %w: %s", certutil, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		r.ran(certutil, args...)
	}
	return nil
}

func (o Options) lookPath(name string) (string, error) {
	if o.LookPath != nil {
		return o.LookPath(name)
	}
	return exec.LookPath(name)
}

// nickname is the NSS nickname of cert.
func nickname(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return "FLM Local CA " + hex.EncodeToString(sum[:8])
}
