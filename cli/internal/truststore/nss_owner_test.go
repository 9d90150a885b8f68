//go:build linux

package truststore

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// userHome makes a home directory owned by uid with an NSS database (as
// Chromium keeps it), the way a user's home looks to root under sudo.
func userHome(t *testing.T, uid int) (home, db string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test checks what install-ca does as root (sudo) and must run as root (CI does)")
	}
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		t.Fatalf("certutil (libnss3-tools) is needed: %v", err)
	}
	// Not t.TempDir: its parent is 0700 root, which the user could not
	// traverse.
	home, err = os.MkdirTemp("", "flm-home-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	db = filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(certutil, "-N", "-d", "sql:"+db, "--empty-password").CombinedOutput(); err != nil {
		t.Fatalf("certutil -N: %v %s", err, out)
	}
	if err := os.Chmod(home, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = filepath.Walk(home, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			err = os.Lchown(p, uid, uid)
		}
		if err != nil {
			t.Fatal(err)
		}
		return nil
	})
	return home, db
}

func owners(t *testing.T, dir string) map[string]uint32 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint32{}
	for _, e := range entries {
		fi, err := os.Lstat(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fi.Sys().(*syscall.Stat_t).Uid
	}
	return out
}

// TestNSSRunsAsHomeOwner: install-ca as root on a user's home runs
// certutil as that user, so whatever certutil creates there (here key4.db
// and pkcs11.txt, removed beforehand) belongs to the user and nothing is
// written with root's rights; uninstall likewise.
func TestNSSRunsAsHomeOwner(t *testing.T) {
	const uid = 65534 // nobody
	home, db := userHome(t, uid)
	for _, f := range []string{"key4.db", "pkcs11.txt"} {
		if err := os.Remove(filepath.Join(db, f)); err != nil {
			t.Fatal(err)
		}
	}
	cert := testCert(t)
	r, err := Install(context.Background(), cert, Options{Home: home, SkipSystem: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Changes) != 1 || !strings.Contains(r.Changes[0].Command, "-A -d sql:"+db) {
		t.Fatalf("changes = %+v, notes %v", r.Changes, r.Notes)
	}
	if !strings.Contains(strings.Join(r.Notes, "\n"), "uid 65534") {
		t.Errorf("notes %v do not say certutil ran as the user", r.Notes)
	}
	got := owners(t, db)
	for _, f := range []string{"cert9.db", "key4.db", "pkcs11.txt"} {
		if u, ok := got[f]; !ok || u != uid {
			t.Errorf("%s: owner %d (present %v), want %d: certutil did not run as the home's owner", f, u, ok, uid)
		}
	}
	l, _ := exec.Command("certutil", "-L", "-d", "sql:"+db).CombinedOutput()
	if !strings.Contains(string(l), nickname(cert)) {
		t.Fatalf("the root is not in %s:\n%s", db, l)
	}
	if r, err := Uninstall(context.Background(), cert, Options{Home: home, SkipSystem: true}); err != nil || len(r.Changes) != 1 {
		t.Fatalf("uninstall: %+v %v", r, err)
	}
	for f, u := range owners(t, db) {
		if u != uid {
			t.Errorf("after uninstall %s is owned by %d", f, u)
		}
	}
}

// TestNSSRefusesForeignEntries: a database whose directory or NSS files
// are not the home owner's own (a root-owned key4.db in the user's
// database, a database directory that is a link) is skipped with a note,
// and certutil never touches it.
func TestNSSRefusesForeignEntries(t *testing.T) {
	const uid = 65534
	home, db := userHome(t, uid)
	if err := os.Lchown(filepath.Join(db, "key4.db"), 0, 0); err != nil {
		t.Fatal(err)
	}
	// A Firefox "profile" that is a link to root's own database.
	rootDB := t.TempDir()
	if out, err := exec.Command("certutil", "-N", "-d", "sql:"+rootDB, "--empty-password").CombinedOutput(); err != nil {
		t.Fatalf("certutil -N: %v %s", err, out)
	}
	ff := filepath.Join(home, ".mozilla", "firefox")
	if err := os.MkdirAll(ff, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rootDB, filepath.Join(ff, "abcd.default")); err != nil {
		t.Fatal(err)
	}
	ran := 0
	o := Options{Home: home, SkipSystem: true, Run: func(context.Context, string, ...string) ([]byte, error) {
		ran++
		return nil, nil
	}}
	r, err := Install(context.Background(), testCert(t), o)
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(r.Notes, "\n")
	if ran != 0 || len(r.Changes) != 0 || !strings.Contains(notes, "key4.db is not owned by uid 65534") || !strings.Contains(notes, "abcd.default is a symbolic link") {
		t.Fatalf("certutil ran %d times, changes %+v, notes:\n%s", ran, r.Changes, notes)
	}
}
