//go:build darwin || windows

package truststore

import (
	"crypto/sha1" //nolint:gosec // the key stores identify certificates by SHA-1 thumbprint
	"crypto/x509"
	"encoding/hex"
	"strings"
)

// sha1Hex is the thumbprint the macOS keychain and Windows' certutil
// identify a certificate by.
func sha1Hex(cert *x509.Certificate) string {
	sum := sha1.Sum(cert.Raw) //nolint:gosec // thumbprint, not a signature
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}
