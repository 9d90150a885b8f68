//go:build windows

package service

// checkTrustedPath is not implemented on Windows (ACLs, not modes): the
// Windows service runs flm.exe from wherever it was installed; install it
// under %ProgramFiles%, which only Administrators can write.
func checkTrustedPath(what, path string, leafOwners ...int) error { return nil }
