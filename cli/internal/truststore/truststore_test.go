//go:build linux

package truststore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func testCert(t *testing.T) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "FLM Local CA test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, PermittedDNSDomainsCritical: true, PermittedDNSDomains: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// fakeDebian lays out a Debian trust store under a temporary root whose
// update-ca-certificates stand-in does what the real one does: link each
// anchor into etc/ssl/certs (with a hash link) and rebuild the bundle.
func fakeDebian(t *testing.T) (Options, *[]string) {
	t.Helper()
	root := t.TempDir()
	anchors := filepath.Join(root, "usr/local/share/ca-certificates")
	links := filepath.Join(root, "etc/ssl/certs")
	for _, d := range []string{anchors, links} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var ran []string
	o := Options{
		Root:       root,
		Home:       t.TempDir(), // no NSS databases
		Privileged: func() bool { return true },
		LookPath: func(name string) (string, error) {
			if name == "update-ca-certificates" {
				return "/usr/sbin/" + name, nil
			}
			return "", exec.ErrNotFound
		},
		Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
			ran = append(ran, strings.Join(append([]string{name}, args...), " "))
			var bundle []byte
			files, _ := filepath.Glob(filepath.Join(anchors, "*.crt"))
			for _, f := range files {
				data, _ := os.ReadFile(f)
				bundle = append(bundle, data...)
				link := filepath.Join(links, strings.TrimSuffix(filepath.Base(f), ".crt")+".pem")
				if _, err := os.Lstat(link); err != nil {
					_ = os.Symlink("/usr/local/share/ca-certificates/"+filepath.Base(f), link)
					_ = os.Symlink(filepath.Base(link), filepath.Join(links, "h-"+strings.TrimSuffix(filepath.Base(f), ".crt")+".0"))
				}
			}
			return nil, os.WriteFile(filepath.Join(links, "ca-certificates.crt"), bundle, 0o644)
		},
	}
	// Someone else's root and link, which must survive.
	if err := os.WriteFile(filepath.Join(anchors, "other.crt"), certPEM(testCert(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	return o, &ran
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != dir {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	return out
}

func TestInstallUninstallDebianLayout(t *testing.T) {
	o, ran := fakeDebian(t)
	ctx := context.Background()
	// The state before install-ca (the other root already trusted).
	if _, err := o.Run(ctx, "update-ca-certificates"); err != nil {
		t.Fatal(err)
	}
	*ran = nil
	before := listDir(t, o.Root)
	cert := testCert(t)

	r, err := Install(ctx, cert, o)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(o.Root, "usr/local/share/ca-certificates", Name(cert)+".crt")
	if len(r.Changes) != 2 || r.Changes[0] != (Change{Action: "wrote", Path: file}) || r.Changes[1].Command != "update-ca-certificates" {
		t.Fatalf("install changes = %+v", r.Changes)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("anchor file: %v %v", fi, err)
	}
	// Twice: one entry, nothing run.
	r, err = Install(ctx, cert, o)
	if err != nil || len(r.Changes) != 0 || len(*ran) != 1 {
		t.Fatalf("second install: %+v %v (ran %v)", r, err, *ran)
	}
	bundle, _ := os.ReadFile(filepath.Join(o.Root, "etc/ssl/certs/ca-certificates.crt"))
	if n := strings.Count(string(bundle), string(certPEM(cert))); n != 1 {
		t.Fatalf("root in the bundle %d times", n)
	}

	r, err = Uninstall(ctx, cert, o)
	if err != nil {
		t.Fatal(err)
	}
	var removed []string
	for _, c := range r.Changes {
		if c.Action == "removed" {
			removed = append(removed, c.Path)
		}
	}
	if len(removed) != 3 || removed[0] != file {
		t.Fatalf("uninstall removed %v, want the anchor, its link and its hash link", removed)
	}
	if after := listDir(t, o.Root); !slices.Equal(after, before) {
		t.Fatalf("after uninstall:\n%v\nbefore install:\n%v", after, before)
	}
	// Absent: nothing to remove, nothing run.
	*ran = nil
	if r, err := Uninstall(ctx, cert, o); err != nil || len(r.Changes) != 0 || len(*ran) != 0 {
		t.Fatalf("uninstall when absent: %+v %v %v", r, err, *ran)
	}
}

func TestNeedsPrivilegeChangesNothing(t *testing.T) {
	o, ran := fakeDebian(t)
	o.Privileged = func() bool { return false }
	before := listDir(t, o.Root)
	for name, op := range map[string]func(context.Context, *x509.Certificate, Options) (Result, error){"install": Install, "uninstall": Uninstall} {
		if _, err := op(context.Background(), testCert(t), o); !errors.Is(err, ErrNeedsPrivilege) {
			t.Errorf("%s without privileges: %v", name, err)
		}
	}
	if len(*ran) != 0 || !slices.Equal(listDir(t, o.Root), before) {
		t.Fatal("something changed without privileges")
	}
}

func TestFedoraLayoutChosenFirst(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc/pki/ca-trust/source/anchors", "usr/local/share/ca-certificates"} {
		_ = os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	o := Options{Root: root, LookPath: func(n string) (string, error) { return "/usr/bin/" + n, nil }}
	cert := testCert(t)
	if got, want := SystemFile(cert, o), filepath.Join(root, "etc/pki/ca-trust/source/anchors", Name(cert)+".pem"); got != want {
		t.Fatalf("SystemFile = %s, want %s", got, want)
	}
	o.LookPath = func(n string) (string, error) { return "", exec.ErrNotFound }
	if _, err := Install(context.Background(), cert, Options{Root: root, LookPath: o.LookPath, Privileged: func() bool { return true }}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("no update command: %v", err)
	}
}

// TestNSS uses the real certutil on a temporary home with an NSS database
// (as Chromium keeps it) and a Firefox profile.
func TestNSS(t *testing.T) {
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		t.Fatalf("certutil (libnss3-tools) is needed: %v", err)
	}
	home := t.TempDir()
	dbs := []string{filepath.Join(home, ".pki", "nssdb"), filepath.Join(home, ".mozilla", "firefox", "abcd.default-release")}
	for _, d := range dbs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(certutil, "-N", "-d", "sql:"+d, "--empty-password").CombinedOutput(); err != nil {
			t.Fatalf("certutil -N: %v %s", err, out)
		}
	}
	o := Options{Home: home, SkipSystem: true}
	cert := testCert(t)
	list := func(d string) string {
		out, _ := exec.Command(certutil, "-L", "-d", "sql:"+d).CombinedOutput()
		return string(out)
	}
	r, err := Install(context.Background(), cert, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Changes) != 2 {
		t.Fatalf("changes = %+v", r.Changes)
	}
	for _, d := range dbs {
		if l := list(d); strings.Count(l, nickname(cert)) != 1 || !strings.Contains(l, "C,,") {
			t.Fatalf("%s after install:\n%s", d, l)
		}
	}
	if r, err := Install(context.Background(), cert, o); err != nil || len(r.Changes) != 0 {
		t.Fatalf("second install: %+v %v", r, err)
	}
	for _, d := range dbs {
		if l := list(d); strings.Count(l, nickname(cert)) != 1 {
			t.Fatalf("%s after a second install:\n%s", d, l)
		}
	}
	if r, err := Uninstall(context.Background(), cert, o); err != nil || len(r.Changes) != 2 {
		t.Fatalf("uninstall: %+v %v", r, err)
	}
	for _, d := range dbs {
		if l := list(d); strings.Contains(l, "FLM") {
			t.Fatalf("%s after uninstall:\n%s", d, l)
		}
	}
	if r, err := Uninstall(context.Background(), cert, o); err != nil || len(r.Changes) != 0 {
		t.Fatalf("uninstall when absent: %+v %v", r, err)
	}
}
