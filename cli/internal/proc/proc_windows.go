//go:build windows

package proc

import (
	"os"
	"syscall"
)

func detachAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
}

// Alive reports whether a process with pid exists.
func Alive(pid int) bool {
	h, err := syscall.OpenProcess(syscall.PROCESS_QUERY_INFORMATION, false, uint32(pid))
	if err != nil {
		return false
	}
	defer syscall.CloseHandle(h)
	var code uint32
	if syscall.GetExitCodeProcess(h, &code) != nil {
		return false
	}
	return code == 259 // STILL_ACTIVE
}

// Terminate stops pid; Windows has no SIGTERM for a detached process, so
// this is not graceful.
func Terminate(pid int) error { return Kill(pid) }

// Kill stops pid at once.
func Kill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// Reload is not available on Windows; running proxies re-read keys and
// policy every 10 s and engines every 15 s by themselves.
func Reload(int) error { return ErrUnsupported }
