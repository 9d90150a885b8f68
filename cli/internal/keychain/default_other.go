//go:build !darwin && !windows

package keychain

func newDefault(scope string, getenv func(string) string) OS {
	return &SecretService{Scope: scope, Getenv: getenv}
}
