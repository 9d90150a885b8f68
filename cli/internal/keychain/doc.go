// Package keychain implements core/secret's Store on the OS keychain, plus
// the explicit file fallback:
//
//   - SecretService: the freedesktop Secret Service over D-Bus (gnome-keyring,
//     KWallet, KeePassXC) — Linux and the BSDs;
//   - MacKeychain: the macOS login keychain through /usr/bin/security (no
//     cgo, so flm still cross-compiles);
//   - WinCred: the Windows Credential Manager (DPAPI-protected, per user);
//   - File: one 0600 file per secret in the data dir, for machines without a
//     keychain, chosen explicitly and reported as a downgrade.
//
// Every keychain item is scoped to one data dir (its absolute path), so two
// data dirs on one machine never share or overwrite each other's key.
//
// Security: values never appear in an argument vector, a log line or an
// error message. A locked keychain is reported as secret.ErrLocked and is
// never unlocked by prompting: flm runs headless as often as not, and a
// prompt nobody answers would hang the command.
package keychain
