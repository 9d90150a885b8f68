//go:build !unix && !windows

package truststore

import (
	"errors"
	"os/exec"
)

// asUser: this system cannot start a process as another user.
func asUser(*exec.Cmd, nssUser) error {
	return errors.New("cannot run certutil as the databases' owner on this system")
}
