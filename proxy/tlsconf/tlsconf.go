// Package tlsconf is the one place FLM's HTTPS listeners get their TLS
// parameters (PRODUCT.md §7): TLS 1.2 minimum, for TLS 1.2 only ECDHE
// cipher suites with AES-GCM or ChaCha20-Poly1305 (AEAD; no CBC, no RSA key
// exchange), curves X25519 and P-256, ALPN h2 and http/1.1. Every TLS mode
// (dev-selfsigned, packaged-ca, https-acme) starts from Server.
package tlsconf

import "crypto/tls"

// CipherSuites are the TLS 1.2 suites allowed (TLS 1.3's are all AEAD and
// not configurable).
var CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Server returns a new server configuration with FLM's parameters and no
// certificate: the caller sets Certificates or GetCertificate (and may add
// ALPN protocols such as ACME's "acme-tls/1").
func Server() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		CipherSuites:     append([]uint16(nil), CipherSuites...),
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
		NextProtos:       []string{"h2", "http/1.1"},
	}
}
