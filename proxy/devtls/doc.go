// Package devtls manages the certificates of FLM's dev-selfsigned TLS mode
// (PRODUCT.md §7): a development certificate authority and a server
// certificate signed by it, kept in the data dir's certs/ directory and
// reused while they stay valid. FLM does not install the CA anywhere: a
// user who wants browsers or other clients to trust the proxy adds
// certs/ca.pem to their trust store by hand (no flm command does this yet);
// `flm chat` and the tests trust it through [CAPool] without installing it.
//
// [Hosts] computes the names a proxy's certificate needs from its bind
// address. For a wildcard bind (0.0.0.0, ::) they include the machine's
// current private interface addresses and "<host>.local", so the LAN URL
// the proxy prints verifies; when those change (a new DHCP lease, another
// network), the next proxy start asks for a name the old certificate lacks
// and [Ensure] reissues it. A running proxy keeps the certificate it loaded.
//
// Files (see [FilesIn]): ca.pem, ca-key.pem, server.pem, server-key.pem.
// [Ensure] creates the directory (0700) if needed, and reuses or (re)issues
// the certificates: a server certificate is reissued when it is missing,
// corrupted, not signed by the CA in the directory, does not cover every
// requested host, or has fewer than 30 days left; a new CA is generated only
// when the CA is missing, corrupted, expires within 30 days, does not match
// its key, or its name constraints do not permit a requested host (for
// example after the machine's host name changed). A new CA must be trusted
// again by hand.
//
// Security notes:
//
//   - Keys are ECDSA P-256. The CA private key is written with mode 0600 and
//     never leaves the machine: nothing in FLM sends it anywhere. A CA key
//     file whose permissions are looser than 0600 is refused (Ensure returns
//     an error naming the file instead of using or replacing it), because it
//     may already have been read by someone else. The server key is 0600
//     too; certificates are 0644.
//   - The CA can only sign server certificates (MaxPathLen 0) and is
//     name-constrained (critical X.509 Name Constraints): DNS names under
//     "localhost", ".local" and the machine host name, and the IP ranges
//     127.0.0.0/8, ::1/128, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16,
//     169.254.0.0/16, fc00::/7 and fe80::/10, plus the hosts that were
//     requested when the CA was created (so that binding to a public address
//     or name still works). Even if the CA key leaked, a verifier honouring
//     name constraints would reject a certificate it signed for any other
//     name, e.g. a public web site. Note that a DNS name constraint also
//     permits the subdomains of that name.
//   - Files are written atomically (temporary file in the same directory,
//     fsync, rename), so a crash never leaves a half-written file; a crash
//     between writing a key and its certificate leaves a mismatched pair,
//     which the next Ensure detects and repairs.
//   - Calls to Ensure are serialised within a process; separate processes
//     sharing a directory should not call it at the same time.
//   - [ServerTLSConfig] allows TLS 1.2 and 1.3 only, and for TLS 1.2 only
//     ECDHE with AES-GCM or ChaCha20-Poly1305.
//
// The package uses the standard library only (and tlsconf).
package devtls
