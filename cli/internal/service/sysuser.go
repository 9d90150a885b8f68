package service

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/unjuno/flm/core/flmerr"
)

// prepareSystemUser makes what the system unit needs and the .deb/.rpm
// otherwise make (packaging/ preinst/postinst): the `flm` system user and
// group, and the data dir owned by it, mode 0700. It also refuses a binary
// the sandbox cannot run (ProtectHome hides /home, /root and /run/user) or
// that another user could replace, an existing `flm` account that is not a
// plain system account, and a data dir another user controls.
func (m *Manager) prepareSystemUser(p Profile) error {
	for _, hidden := range []string{"/home/", "/root/", "/run/user/"} {
		if strings.HasPrefix(p.Executable, hidden) {
			return flmerr.New(flmerr.InvalidArgument, "the system service cannot run %s: its sandbox hides %s (ProtectHome). Copy flm to /usr/local/bin (`sudo install -m 0755 %s /usr/local/bin/flm`) and run `sudo /usr/local/bin/flm service install --system`", p.Executable, strings.TrimSuffix(hidden, "/"), p.Executable)
		}
	}
	if err := checkTrustedPath("the flm binary", p.Executable); err != nil {
		return err
	}
	lookup := m.LookupUser
	if lookup == nil {
		lookup = user.Lookup
	}
	lookupGroup := m.LookupGroup
	if lookupGroup == nil {
		lookupGroup = user.LookupGroup
	}
	// The data dir is checked before anything is created: root chowns it,
	// so one another user controls (or a symlink they planted) is refused.
	u, lookupErr := lookup(SystemUser)
	var leafOwners []int
	if lookupErr == nil {
		if err := m.checkSystemAccount(u, lookupGroup); err != nil {
			return err
		}
		uid, _ := strconv.Atoi(u.Uid)
		leafOwners = append(leafOwners, uid)
	}
	if err := checkTrustedPath("the data dir", p.DataDir, leafOwners...); err != nil {
		return err
	}
	if lookupErr != nil {
		// As packaging/scripts/preinst does: the group first (it may be
		// left over), then the user in it.
		if _, gerr := lookupGroup(SystemUser); gerr != nil {
			if out, err := m.run("groupadd", "--system", SystemUser); err != nil {
				return flmerr.Wrap(err, CodeFailed, "create the system group %s with groupadd: %s", SystemUser, out)
			}
		}
		nologin := "/usr/sbin/nologin"
		if !exists(nologin) {
			nologin = "/sbin/nologin"
		}
		if out, err := m.run("useradd", "--system", "--gid", SystemUser, "--home-dir", SystemDataDir, "--no-create-home",
			"--shell", nologin, "--comment", "FLM service", SystemUser); err != nil {
			return flmerr.Wrap(err, CodeFailed, "create the system user %s with useradd: %s", SystemUser, out)
		}
		var err error
		if u, err = lookup(SystemUser); err != nil {
			return flmerr.Wrap(err, CodeFailed, "look up the system user %s after creating it", SystemUser)
		}
		if err := m.checkSystemAccount(u, lookupGroup); err != nil {
			return err
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// Parents 0755 (the flm user must be able to reach its data dir), the
	// data dir itself 0700.
	if err := os.MkdirAll(filepath.Dir(p.DataDir), 0o755); err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "create the service's data dir")
	}
	if err := os.Mkdir(p.DataDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return flmerr.Wrap(err, flmerr.IOError, "create the service's data dir")
	}
	if err := os.Chown(p.DataDir, uid, gid); err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "give the data dir %s to %s", filepath.Clean(p.DataDir), SystemUser)
	}
	if err := os.Chmod(p.DataDir, 0o700); err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "chmod the service's data dir")
	}
	return nil
}

// checkSystemAccount refuses an existing `flm` account the service must not
// run as: root's uid or gid (User=flm would run the proxy as root), or a
// login shell (a person's account, or another program's). The package and
// `flm service install` create it with uid/gid < 1000 and nologin.
func (m *Manager) checkSystemAccount(u *user.User, lookupGroup func(string) (*user.Group, error)) error {
	fix := "flm runs its system service as a dedicated account with no login: remove or rename that account (or give it the shell /usr/sbin/nologin if it is FLM's own) and install again"
	if u.Uid == "0" || u.Gid == "0" {
		return flmerr.New(flmerr.InvalidArgument, "the user %s exists with uid %s and gid %s (root's): %s", SystemUser, u.Uid, u.Gid, fix)
	}
	if g, err := lookupGroup(SystemUser); err == nil && g.Gid == "0" {
		return flmerr.New(flmerr.InvalidArgument, "the group %s exists with gid 0 (root's): %s", SystemUser, fix)
	}
	if shell := m.loginShell(SystemUser); shell != "" && !noLogin(shell) {
		return flmerr.New(flmerr.InvalidArgument, "the user %s exists with the login shell %s: %s", SystemUser, shell, fix)
	}
	return nil
}

// loginShell is name's shell in the passwd file ("" when not listed there:
// an LDAP account, or not found).
func (m *Manager) loginShell(name string) string {
	path := m.PasswdFile
	if path == "" {
		path = "/etc/passwd"
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) == 7 && fields[0] == name {
			return fields[6]
		}
	}
	return ""
}

func noLogin(shell string) bool {
	switch filepath.Base(shell) {
	case "nologin", "false":
		return true
	}
	return false
}
