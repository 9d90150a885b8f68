//go:build linux

package truststore

// Adversarial review of install-ca (issue 10 part 2). A failing test is a
// finding (see the review report).

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestReviewNSSDoesNotWriteThroughSymlinks: install-ca runs as root (sudo)
// and then runs certutil on the NSS databases in the invoking user's home —
// directories and files that user (or malware running as that user)
// controls. certutil follows a planted symlink and creates the file it
// points to (pkcs11.txt, key4.db) wherever it points, as root, and the
// pkcs11.txt it writes contains the profile directory's name (attacker
// chosen, newlines allowed): a file like /etc/cron.d/x with an
// attacker-controlled line. Install must never create or change a file
// outside the NSS database directories (drop to the user's uid for
// certutil, or refuse symlinked/foreign-owned entries).
func TestReviewNSSDoesNotWriteThroughSymlinks(t *testing.T) {
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		t.Fatalf("certutil (libnss3-tools) is needed: %v", err)
	}
	home := t.TempDir()
	outside := filepath.Join(t.TempDir(), "etc-cron.d-flm") // stands for /etc/cron.d/flm
	profile := filepath.Join(home, ".mozilla", "firefox", "x\n* * * * * root id #")
	if err := os.MkdirAll(profile, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(certutil, "-N", "-d", "sql:"+profile, "--empty-password").CombinedOutput(); err != nil {
		t.Fatalf("certutil -N: %v %s", err, out)
	}
	// The attacker keeps cert9.db (so the profile is picked) and replaces
	// pkcs11.txt with a link to where they want a root-owned file.
	if err := os.Remove(filepath.Join(profile, "pkcs11.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(profile, "key4.db")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(profile, "pkcs11.txt")); err != nil {
		t.Fatal(err)
	}
	_, _ = Install(context.Background(), testCert(t), Options{Home: home, SkipSystem: true})
	if b, err := os.ReadFile(outside); err == nil {
		t.Fatalf("install-ca's certutil wrote %s through a symlink in the user's NSS profile:\n%s", outside, b)
	}
}
