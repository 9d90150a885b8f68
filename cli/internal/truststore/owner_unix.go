//go:build !windows

package truststore

import (
	"os"
	"syscall"
)

// OwnedByOther reports whether path belongs to a user other than the
// effective one (root working in a user's data dir under sudo).
func OwnedByOther(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) != os.Geteuid()
}

// Privileged reports whether the process may change the system store.
func Privileged(o Options) bool { return o.privileged() }
