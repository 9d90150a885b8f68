package service

import (
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
// the sandbox cannot run (ProtectHome hides /home, /root and /run/user).
func (m *Manager) prepareSystemUser(p Profile) error {
	for _, hidden := range []string{"/home/", "/root/", "/run/user/"} {
		if strings.HasPrefix(p.Executable, hidden) {
			return flmerr.New(flmerr.InvalidArgument, "the system service cannot run %s: its sandbox hides %s (ProtectHome). Copy flm to /usr/local/bin (`sudo install -m 0755 %s /usr/local/bin/flm`) and run `sudo /usr/local/bin/flm service install --system`", p.Executable, strings.TrimSuffix(hidden, "/"), p.Executable)
		}
	}
	lookup := m.LookupUser
	if lookup == nil {
		lookup = user.Lookup
	}
	u, err := lookup(SystemUser)
	if err != nil {
		nologin := "/usr/sbin/nologin"
		if !exists(nologin) {
			nologin = "/sbin/nologin"
		}
		if out, err := m.run("useradd", "--system", "--user-group", "--home-dir", SystemDataDir, "--no-create-home",
			"--shell", nologin, "--comment", "FLM service", SystemUser); err != nil {
			return flmerr.Wrap(err, CodeFailed, "create the system user %s with useradd: %s", SystemUser, out)
		}
		if u, err = lookup(SystemUser); err != nil {
			return flmerr.Wrap(err, CodeFailed, "look up the system user %s after creating it", SystemUser)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(p.DataDir, 0o700); err != nil {
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
