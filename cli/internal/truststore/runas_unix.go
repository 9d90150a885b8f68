//go:build unix

package truststore

import (
	"os/exec"
	"syscall"
)

// asUser makes cmd run with u's user, group and supplementary groups (none
// of ours: root's groups are dropped too).
func asUser(cmd *exec.Cmd, u nssUser) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: append([]uint32{}, u.groups...)}}
	return nil
}
