//go:build darwin

package keychain

func newDefault(scope string, _ func(string) string) OS {
	return &MacKeychain{Scope: scope}
}
