//go:build windows

package truststore

// OwnedByOther is false on Windows: an elevated process keeps the user's
// profile and data dir.
func OwnedByOther(string) bool { return false }

// Privileged reports whether the process may change the system store.
func Privileged(o Options) bool { return o.privileged() }
