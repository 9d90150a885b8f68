// Package proc starts, signals and watches the background proxy process.
package proc

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// CmdlineHas reports whether the process's command line holds every one of
// args, in order, as whole arguments; ok is false where the OS does not
// tell (only Linux's /proc is read).
func CmdlineHas(pid int, args ...string) (has, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false, false
	}
	argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	i := 0
	for _, a := range argv {
		if i < len(args) && a == args[i] {
			i++
		}
	}
	return i == len(args), true
}
