//go:build unix

package proc

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
)

func detachAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

// Alive reports whether a process with pid exists (and is not a zombie we
// could reap).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	// Reap it if it is our own exited child, so it does not linger as a
	// zombie that signal 0 would still find.
	var ws syscall.WaitStatus
	if wpid, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); wpid == pid {
		return false
	}
	err := syscall.Kill(pid, 0)
	return (err == nil || errors.Is(err, syscall.EPERM)) && !zombie(pid)
}

// zombie reports a process that has exited but was not reaped yet (its
// parent is gone and init reaps lazily): signal 0 still finds it.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false // not Linux, or already gone
	}
	// The state follows the parenthesised command name, which may itself
	// contain spaces or parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// Terminate asks pid to stop gracefully.
func Terminate(pid int) error { return syscall.Kill(pid, syscall.SIGTERM) }

// Kill stops pid at once.
func Kill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// Reload asks pid to re-read its configuration.
func Reload(pid int) error { return syscall.Kill(pid, syscall.SIGHUP) }
