// Package proc starts, signals and watches the background proxy process.
package proc

import (
	"errors"
	"os"
	"os/exec"
	"time"
)

// ErrUnsupported is returned where the OS lacks a mechanism (SIGHUP on
// Windows).
var ErrUnsupported = errors.New("not supported on this operating system")

// StartDetached starts exe with args in its own session, stdin from
// /dev/null and stdout/stderr to log, so it outlives the caller and its
// terminal.
func StartDetached(exe string, args []string, env []string, log *os.File) (*os.Process, error) {
	cmd := exec.Command(exe, args...)
	cmd.Env = env
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = detachAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd.Process, nil
}

// WaitExit polls until pid is gone or timeout passes; it reports whether
// the process exited.
func WaitExit(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !Alive(pid) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return !Alive(pid)
}
