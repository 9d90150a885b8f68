// Package acme gets, keeps and renews the certificate of the https-acme mode
// (PRODUCT.md §7) with lego v5: HTTP-01 (Manager.HTTPHandler on the proxy's
// HTTP port), TLS-ALPN-01 (Manager.TLSConfig answers "acme-tls/1"
// handshakes on the HTTPS port) and DNS-01 through FLM's curated registry of
// lego DNS providers (DNSProviders; credentials from each provider's
// environment variables).
//
// The manager serves the current certificate through
// tls.Config.GetCertificate and swaps it atomically on renewal: handshakes
// in progress and open connections keep the old one, new handshakes get the
// new one. A valid stored certificate that is not due is used as is at
// start (no order: CA rate limits). Renewal is checked at start and every
// 12 hours (certs.NeedsRenewal, with the CA's ARI window when it offers
// one); a failed renewal keeps the old certificate while it is valid,
// retries with backoff, records certs.MetaLastError and writes an audit
// event.
//
// Security notes: the ACME account key and certificate keys live only in
// the certs.Store/AccountStore (security.db, encrypted at rest); nothing is
// written to disk elsewhere, logged or put in an error message. CA errors
// are reported as PROXY_ACME_ERROR with the CA's problem detail. The
// HTTP-01 handler answers only tokens of challenges in progress, and the
// TLS-ALPN-01 certificate is only ever returned to a client that offers
// "acme-tls/1" alone, as RFC 8737 requires of the validation server.
package acme
