package service

import (
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/unjuno/flm/core/flmerr"
)

// Adversarial review: root must never write through, chown or run
// something another user controls, and must not run the service as an
// account that is not a plain system account.

const (
	reviewAttacker = 65534 // nobody: "another user"
	reviewFlmUID   = 64999 // the flm account in these tests
)

func reviewRoot(t *testing.T) {
	t.Helper()
	reviewNeeds(t, os.Geteuid() == 0, "needs root (chown to another user)")
}

// reviewManager is a system-scope Manager on temp dirs that records the
// commands it runs; flm is a plain system account unless a test changes it.
func reviewManager(t *testing.T) (*Manager, *fakeService, *[]string) {
	t.Helper()
	root := t.TempDir()
	svc := &fakeService{}
	var cmds []string
	m := &Manager{System: fakeSystem{svc}, EtcDir: filepath.Join(root, "etc"), PackagedDirs: []string{filepath.Join(root, "lib")},
		Geteuid: func() int { return 0 },
		LookupUser: func(string) (*user.User, error) {
			return &user.User{Username: SystemUser, Uid: "64999", Gid: "64999"}, nil
		},
		LookupGroup: func(string) (*user.Group, error) { return &user.Group{Name: SystemUser, Gid: "64999"}, nil },
		PasswdFile:  filepath.Join(root, "passwd"),
		Run: func(name string, args ...string) (string, error) {
			cmds = append(cmds, strings.Join(append([]string{name}, args...), " "))
			return "", nil
		}}
	return m, svc, &cmds
}

func ownerMode(t *testing.T, p string) (int, os.FileMode) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid), fi.Mode().Perm()
}

// attackerDir is a directory another user owns (mode 0755).
func attackerDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "attacker")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, reviewAttacker, reviewAttacker); err != nil {
		t.Fatal(err)
	}
	return d
}

func reviewProfile(exe, data string) Profile {
	return Profile{Name: Name, Scope: ScopeSystem, Executable: exe, DataDir: data, KeySource: "file"}
}

// rootExe is a root-owned executable in a root-owned dir.
func rootExe(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "flm")
	if err := os.WriteFile(exe, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

// --data-dir through a symlink a user planted: before the fix root chowned
// the target (here a root dir standing for /etc) to flm and made it 0700.
func TestServiceReviewDataDirSymlinkRefused(t *testing.T) {
	reviewRoot(t)
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	evil := attackerDir(t)
	if err := os.Symlink(victim, filepath.Join(evil, "data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(evil, "data"), reviewAttacker, reviewAttacker); err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{filepath.Join(evil, "data"), filepath.Join(evil, "data", "sub"), filepath.Join(evil, "new")} {
		m, svc, cmds := reviewManager(t)
		_, err := m.Install(reviewProfile(rootExe(t), data))
		if !flmerr.Is(err, flmerr.InvalidArgument) || !strings.Contains(err.Error(), "uid 65534") {
			t.Fatalf("%s: err = %v, want INVALID_ARGUMENT naming the other user", data, err)
		}
		if uid, mode := ownerMode(t, victim); uid != 0 || mode != 0o755 {
			t.Fatalf("%s: the symlink's target became uid %d mode %o", data, uid, mode)
		}
		if _, err := os.Lstat(filepath.Join(evil, "new")); err == nil {
			t.Fatalf("%s: root created a dir in the other user's dir", data)
		}
		if len(*cmds) != 0 || len(svc.calls) != 0 {
			t.Fatalf("%s: ran %q, kardianos %q", data, *cmds, svc.calls)
		}
	}
}

// An existing data dir that belongs to another user (who may have planted a
// key file or settings in it), a world-writable parent, a world-writable
// sticky parent where the data dir does not exist yet (a race to create it).
func TestServiceReviewDataDirOwnershipRefused(t *testing.T) {
	reviewRoot(t)
	foreign := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(foreign, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(foreign, reviewAttacker, reviewAttacker); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(open, 0o777)
	sticky := filepath.Join(t.TempDir(), "sticky")
	if err := os.Mkdir(sticky, 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(sticky, 0o777|os.ModeSticky)
	for _, data := range []string{foreign, filepath.Join(open, "data"), filepath.Join(sticky, "data")} {
		m, _, cmds := reviewManager(t)
		if _, err := m.Install(reviewProfile(rootExe(t), data)); !flmerr.Is(err, flmerr.InvalidArgument) {
			t.Fatalf("%s: err = %v, want INVALID_ARGUMENT", data, err)
		}
		if len(*cmds) != 0 {
			t.Fatalf("%s: ran %q", data, *cmds)
		}
	}
	if uid, _ := ownerMode(t, foreign); uid != reviewAttacker {
		t.Fatal("the other user's dir was chowned")
	}
}

// A data dir whose parents do not exist: the parents must be traversable
// by flm (before the fix they were created 0700 root, and the service could
// not reach its own data dir). A data dir flm already owns (a reinstall) is
// accepted.
func TestServiceReviewDataDirCreatedReachable(t *testing.T) {
	reviewRoot(t)
	base := t.TempDir()
	_ = os.Chmod(base, 0o755)
	data := filepath.Join(base, "srv", "flm", "data")
	m, _, _ := reviewManager(t)
	if _, err := m.Install(reviewProfile(rootExe(t), data)); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(base, "srv"), filepath.Join(base, "srv", "flm")} {
		if uid, mode := ownerMode(t, d); uid != 0 || mode != 0o755 {
			t.Errorf("%s: uid %d mode %o, want root 0755", d, uid, mode)
		}
	}
	if uid, mode := ownerMode(t, data); uid != reviewFlmUID || mode != 0o700 {
		t.Errorf("data dir: uid %d mode %o, want flm 0700", uid, mode)
	}
	m2, _, _ := reviewManager(t)
	if _, err := m2.Install(reviewProfile(rootExe(t), data)); err != nil {
		t.Fatalf("reinstall over flm's own data dir: %v", err)
	}
}

// Root installing a system service from a binary another user can replace:
// the service (flm; root under launchd) would run their code. Refused.
func TestServiceReviewUserWritableExecutableRefused(t *testing.T) {
	reviewRoot(t)
	evil := attackerDir(t)
	inEvil := filepath.Join(evil, "flm")
	if err := os.WriteFile(inEvil, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	theirs := rootExe(t)
	if err := os.Chown(theirs, reviewAttacker, reviewAttacker); err != nil {
		t.Fatal(err)
	}
	worldDir := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(worldDir, 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(worldDir, 0o777)
	inWorld := filepath.Join(worldDir, "flm")
	if err := os.WriteFile(inWorld, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	writable := rootExe(t)
	_ = os.Chmod(writable, 0o777)
	for _, exe := range []string{inEvil, theirs, inWorld, writable} {
		m, svc, cmds := reviewManager(t)
		data := filepath.Join(t.TempDir(), "data")
		_, err := m.Install(reviewProfile(exe, data))
		if !flmerr.Is(err, flmerr.InvalidArgument) || !strings.Contains(err.Error(), "flm binary") {
			t.Fatalf("%s: err = %v, want INVALID_ARGUMENT about the binary", exe, err)
		}
		if _, err := os.Stat(data); err == nil || len(*cmds) != 0 || len(svc.calls) != 0 {
			t.Fatalf("%s: something was done: data dir %v, cmds %q, kardianos %q", exe, err, *cmds, svc.calls)
		}
	}
	// The same check guards the launchd daemon (root).
	m, _, _ := reviewManager(t)
	m.System = fakeLaunchd{fakeSystem{&fakeService{}}}
	m.HomeDir = t.TempDir()
	if _, err := m.Install(reviewProfile(inEvil, filepath.Join(t.TempDir(), "data"))); !flmerr.Is(err, flmerr.InvalidArgument) {
		t.Fatalf("launchd daemon from a user's dir: %v", err)
	}
}

type fakeLaunchd struct{ fakeSystem }

func (fakeLaunchd) String() string { return PlatformLaunchd }

// An existing `flm` account that is root's, in root's group, or a person's
// (login shell) is not run as; nothing is created then.
func TestServiceReviewForeignFlmAccountRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		u      *user.User
		g      *user.Group
		passwd string
	}{
		"uid 0":       {&user.User{Username: SystemUser, Uid: "0", Gid: "64999"}, nil, ""},
		"gid 0":       {&user.User{Username: SystemUser, Uid: "64999", Gid: "0"}, nil, ""},
		"group gid 0": {nil, &user.Group{Name: SystemUser, Gid: "0"}, ""},
		"login shell": {nil, nil, "root:x:0:0:root:/root:/bin/bash\nflm:x:64999:64999:Fred L. M.:/home/flm:/bin/bash\n"},
	} {
		t.Run(name, func(t *testing.T) {
			m, svc, cmds := reviewManager(t)
			if tc.u != nil {
				m.LookupUser = func(string) (*user.User, error) { return tc.u, nil }
			}
			if tc.g != nil {
				m.LookupGroup = func(string) (*user.Group, error) { return tc.g, nil }
			}
			if tc.passwd != "" {
				if err := os.WriteFile(m.PasswdFile, []byte(tc.passwd), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			data := filepath.Join(t.TempDir(), "data")
			_, err := m.Install(reviewProfile(rootExe(t), data))
			if !flmerr.Is(err, flmerr.InvalidArgument) || !strings.Contains(err.Error(), "the "+map[bool]string{true: "group", false: "user"}[tc.g != nil]+" flm exists") {
				t.Fatalf("err = %v, want INVALID_ARGUMENT", err)
			}
			if _, err := os.Stat(data); err == nil || len(*cmds) != 0 || len(svc.calls) != 0 {
				t.Fatalf("something was done: data dir %v, cmds %q, kardianos %q", err, *cmds, svc.calls)
			}
		})
	}
	// The package's own account (nologin) is fine.
	m, _, _ := reviewManager(t)
	if err := os.WriteFile(m.PasswdFile, []byte("flm:x:64999:64999:FLM gateway:/var/lib/flm:/usr/sbin/nologin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if _, err := m.Install(reviewProfile(rootExe(t), filepath.Join(t.TempDir(), "data"))); err != nil {
			t.Fatalf("nologin account: %v", err)
		}
	}
}

// A group `flm` left over without the user (for example after `userdel
// flm`): before the fix `useradd --user-group` failed ("group flm exists").
// Now, as packaging/scripts/preinst: groupadd only when missing, then
// useradd --gid flm.
func TestServiceReviewLeftoverGroup(t *testing.T) {
	reviewRoot(t)
	for _, groupExists := range []bool{true, false} {
		m, _, cmds := reviewManager(t)
		created := false
		m.LookupUser = func(string) (*user.User, error) {
			if !created {
				return nil, user.UnknownUserError(SystemUser)
			}
			return &user.User{Username: SystemUser, Uid: "64999", Gid: "64999"}, nil
		}
		m.LookupGroup = func(string) (*user.Group, error) {
			if groupExists {
				return &user.Group{Name: SystemUser, Gid: "64999"}, nil
			}
			return nil, user.UnknownGroupError(SystemUser)
		}
		run := m.Run
		m.Run = func(name string, args ...string) (string, error) {
			if name == "useradd" {
				created = true
			}
			return run(name, args...)
		}
		if _, err := m.Install(reviewProfile(rootExe(t), filepath.Join(t.TempDir(), "data"))); err != nil {
			t.Fatal(err)
		}
		var accounts []string
		for _, c := range *cmds {
			if strings.HasPrefix(c, "useradd") || strings.HasPrefix(c, "groupadd") {
				f := strings.Fields(c)
				accounts = append(accounts, strings.Join(f[:min(4, len(f))], " "))
			}
		}
		want := []string{"useradd --system --gid flm"}
		if !groupExists {
			want = []string{"groupadd --system flm", "useradd --system --gid flm"}
		}
		if !slices.Equal(accounts, want) {
			t.Fatalf("group exists %v: %q, want %q (all: %q)", groupExists, accounts, want, *cmds)
		}
	}
}

// `sudo -E flm service install --user` (HOME is another user's): root would
// write the unit and follow symlinks in their home. Refused before anything
// is written; root's own home is fine.
func TestServiceReviewRootUserServiceInOthersHome(t *testing.T) {
	reviewRoot(t)
	home := attackerDir(t)
	rt := t.TempDir()
	if err := os.WriteFile(filepath.Join(rt, "bus"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	svc := &fakeService{}
	m := &Manager{System: fakeSystem{svc}, HomeDir: home, Geteuid: func() int { return 0 },
		Getenv: func(k string) string {
			if k == "XDG_RUNTIME_DIR" {
				return rt
			}
			return ""
		}}
	p := Profile{Name: Name, Scope: ScopeUser, Executable: "/usr/bin/flm", DataDir: filepath.Join(home, "data")}
	for name, op := range map[string]func(Profile) (Report, error){"install": m.Install, "uninstall": m.Uninstall, "start": m.Start, "stop": m.Stop} {
		if _, err := op(p); !flmerr.Is(err, flmerr.InvalidArgument) || !strings.Contains(err.Error(), "not root's") {
			t.Errorf("%s: err = %v, want INVALID_ARGUMENT", name, err)
		}
	}
	if err := m.CheckUserHome(ScopeUser); err == nil {
		t.Fatal("CheckUserHome accepted another user's home")
	}
	entries, _ := os.ReadDir(home)
	if len(entries) != 0 || len(svc.calls) != 0 {
		t.Fatalf("written into the other user's home: %v; kardianos %q", entries, svc.calls)
	}
	m.HomeDir = t.TempDir()
	if err := m.CheckUserHome(ScopeUser); err != nil {
		t.Fatalf("root's own home: %v", err)
	}
	// A non-root user's own operations are not affected.
	m.Geteuid, m.HomeDir = func() int { return 1000 }, home
	if err := m.CheckUserHome(ScopeUser); err != nil {
		t.Fatalf("non-root: %v", err)
	}
}
