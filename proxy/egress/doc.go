// Package egress is how the proxy, engine detection and ACME reach hosts
// that are not on this machine: directly, or through a SOCKS5 proxy (Tor
// or any other) with remote name resolution (socks5h), PRODUCT.md §8.
//
// Rules of a Dialer:
//
//   - A loopback destination (an IP literal in 127.0.0.0/8 or ::1, or the
//     name "localhost" or a name under ".localhost", RFC 6761) is dialed
//     directly in every mode. No other name is ever resolved locally to
//     decide: in SOCKS modes the name goes to the SOCKS server as it is.
//   - In SOCKS modes every other destination goes through the SOCKS server.
//     When it cannot be reached (or refuses the handshake or FLM's
//     credentials) the dial fails with an *UnavailableError (errors.Is
//     ErrUnavailable): there is never a fallback to a direct connection.
//     Every dial starts afresh, so service resumes by itself once the
//     SOCKS server is back.
//   - In direct mode a ".onion" destination is refused (ErrOnionDirect):
//     it would otherwise leak the onion name to the local resolver.
//
// Security notes: the SOCKS credentials (FLM_SOCKS5_USERNAME and
// FLM_SOCKS5_PASSWORD) are never logged nor put into an error; Auth's
// String hides them. Errors name the SOCKS endpoint (it is FLM's own
// configuration), never the credentials; the proxy does not pass the
// endpoint on to API clients.
package egress
