//go:build windows

package keychain

func newDefault(scope string, _ func(string) string) OS {
	return &WinCred{Scope: scope}
}
