// Package localca is FLM's packaged-ca TLS mode (PRODUCT.md §7): a root
// certificate authority generated on this machine, and the server
// certificate it signs for the proxy.
//
// The root (ECDSA P-256, valid 10 years) and the server certificate are
// kept in a certs.Store (security.db, encrypted at rest) under
// certs.LocalCARootID and certs.LocalCAServerID. The root's certificate —
// public — is also exported to a file (certs/local-ca.pem) for the user to
// copy to phones and for the CLI's probes; the root's private key is never
// written to a file.
//
// The server certificate names localhost, 127.0.0.1, ::1, the host name,
// "<host>.local" and the machine's current private (LAN) addresses. A
// [Manager] reissues it when that set changes (a new DHCP lease, another
// network) or when it is due for renewal ([certs.NeedsRenewal]; it is valid
// 90 days), and serves it through tls.Config.GetCertificate from an atomic
// pointer, so the next handshake gets the new certificate without a restart
// and connections in flight are not touched.
//
// Security notes:
//
//   - The root is name-constrained (critical X.509 Name Constraints): DNS
//     names under "localhost", ".local" and ".home.arpa" (RFC 8375), the
//     machine's host name exactly (its subdomains are excluded, so a host
//     called "dev" does not make the CA valid for every ".dev" site), and
//     the address ranges 127.0.0.0/8, ::1, 10/8, 172.16/12, 192.168/16,
//     169.254/16, fc00::/7 and fe80::/10. Its MaxPathLen is 0: it signs no
//     other CA. E-mail addresses and URIs are permitted only in the
//     reserved "invalid" domain (NoneDomain), and its ExtKeyUsage is
//     serverAuth only, so its key signs nothing but TLS server
//     certificates a verifier accepts. Even if its key leaked, a verifier
//     honouring name constraints (Go, NSS, OpenSSL, Apple, Windows) rejects
//     what it signs for any public name or address. This is why installing
//     it into the OS trust store is far less dangerous than installing an
//     ordinary root — and why packaged-ca cannot serve a public name (use
//     https-acme for that).
//   - A root read from a file (certs/local-ca.pem, which the user can
//     replace) is trusted only through CheckRoot/ParseRoot with this
//     machine's host name: a root permitting any other name is refused.
//     An earlier FLM's root (ErrOutdatedRoot) is never trusted anew; the
//     Manager replaces it.
//   - Several proxies share the server certificate: one naming at least
//     what a proxy wants is kept, and a reissue keeps the stored addresses
//     still on this machine's interfaces, so proxies with different binds
//     converge instead of replacing each other's certificate.
//   - The root's key lives only in the store. Nothing here logs a key.
//   - TLS parameters come from tlsconf.Server (TLS 1.2+, AEAD suites only).
package localca
