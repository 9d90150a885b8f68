package localca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unjuno/flm/core/certs"
	"github.com/unjuno/flm/proxy/devtls"
	"github.com/unjuno/flm/proxy/tlsconf"
)

const (
	rootValidityYears = 10
	// ServerValidity is the server certificate's lifetime; it is renewed
	// when a third of it remains (certs.NeedsRenewal).
	ServerValidity = 90 * 24 * time.Hour
	// backdate tolerates small clock differences between devices.
	backdate = time.Hour
	// DefaultInterval is how often Maintain checks the LAN addresses.
	DefaultInterval = time.Minute
	// RootCommonName starts the root's common name.
	RootCommonName = "FLM Local CA"
)

// PermittedDNSDomains are the DNS name constraints of every root (plus the
// machine's host name). A leading dot means "subdomains only".
var PermittedDNSDomains = []string{"localhost", ".local", ".home.arpa"}

// PermittedIPRanges are the address constraints of every root.
var PermittedIPRanges = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("fe80::/10"),
}

// NoneDomain is the only e-mail and URI domain the root permits: the
// reserved ".invalid" TLD (RFC 6761), which never resolves. A permitted
// subtree of one impossible name is how "no e-mail addresses, no URIs" is
// written portably: crypto/x509 also treats an empty excluded constraint
// as "everything", but OpenSSL matches it against nothing, so an empty
// exclusion would leave e-mail/URI names open there.
const NoneDomain = "invalid"

// ErrOutdatedRoot: a root made by an earlier FLM, without the restrictions
// to TLS servers (ExtKeyUsage serverAuth, no e-mail or URI names). The
// Manager replaces it (install-ca must be run again); it is never trusted
// anew.
var ErrOutdatedRoot = errors.New("made by an earlier FLM without the TLS-server-only restrictions (ExtKeyUsage serverAuth, no e-mail or URI names)")

// ErrForeignHost: a root whose host name is not this machine's.
var ErrForeignHost = errors.New("permits a host name that is not this machine's")

// ErrOutsideConstraints: the proxy's bind address is not a name the root
// may certify (a public address): packaged-ca serves the LAN only.
var ErrOutsideConstraints = errors.New("outside the local CA's name constraints")

// Fingerprint is the hex SHA-256 of a certificate's DER, as browsers and
// `openssl x509 -fingerprint -sha256` show it (without colons).
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// NewRoot creates a root CA for a machine called hostname ("" = none) at
// now, and returns its certificate and PKCS#8 key in PEM.
func NewRoot(hostname string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("localca: generate root key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	cn := RootCommonName
	if hostname != "" {
		cn += " (" + hostname + ")"
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// The date tells two roots of the same machine apart in a trust
		// store's list.
		Subject:               pkix.Name{Organization: []string{"FLM"}, OrganizationalUnit: []string{"packaged-ca " + now.UTC().Format("2006-01-02 15:04:05")}, CommonName: cn},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(rootValidityYears, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		// Verifiers (Go, NSS, Windows, Apple) nest extended key usages
		// down the chain: whatever the key signs is good for TLS servers
		// only — no S/MIME, code signing or client certificates.
		ExtKeyUsage:                 []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         slices.Clone(PermittedDNSDomains),
		PermittedEmailAddresses:     []string{NoneDomain},
		PermittedURIDomains:         []string{NoneDomain},
	}
	if hostname != "" && !dnsPermitted(tmpl, hostname) {
		// Exactly the host: the name, not its subdomains.
		tmpl.PermittedDNSDomains = append(tmpl.PermittedDNSDomains, hostname)
		tmpl.ExcludedDNSDomains = append(tmpl.ExcludedDNSDomains, "."+hostname)
	}
	for _, p := range PermittedIPRanges {
		tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges, &net.IPNet{
			IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
		})
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("localca: create root: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("localca: encode root key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// CheckRoot reports whether c is an FLM local root for the machine called
// hostname: a self-signed CA with MaxPathLen 0, ExtKeyUsage serverAuth
// only, no e-mail or URI names, and critical name constraints no wider
// than PermittedDNSDomains, PermittedIPRanges and — if any — hostname
// exactly (excluded below itself). Use it before trusting a root read from
// a file: a root permitting any other name (a public one such as
// "www.google.com") is refused (ErrForeignHost), and so is a root made by
// an earlier FLM (ErrOutdatedRoot).
func CheckRoot(c *x509.Certificate, hostname string) error {
	host, err := checkShape(c)
	if err != nil {
		return err
	}
	if host == "" {
		return nil
	}
	if want, ip, nerr := devtls.NormalizeHost(hostname); nerr != nil || ip.IsValid() || want != host {
		return fmt.Errorf("%w: it permits %q, this machine is %q", ErrForeignHost, host, hostname)
	}
	return nil
}

// checkShape is CheckRoot without the host name check; it returns the
// extra host name the root permits ("" = none). ErrOutdatedRoot: the
// shape of an earlier FLM's root.
func checkShape(c *x509.Certificate) (string, error) {
	host, err := checkBaseShape(c)
	if err != nil {
		return "", err
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || len(c.UnknownExtKeyUsage) > 0 ||
		!slices.Equal(c.PermittedEmailAddresses, []string{NoneDomain}) || !slices.Equal(c.PermittedURIDomains, []string{NoneDomain}) {
		return "", ErrOutdatedRoot
	}
	return host, nil
}

// checkBaseShape checks what every FLM root, earlier ones too, has: a
// self-signed CA with MaxPathLen 0 and critical constraints no wider than
// the fixed set plus one exact host name (returned), and no e-mail or URI
// names beyond NoneDomain.
func checkBaseShape(c *x509.Certificate) (string, error) {
	switch {
	case !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero:
		return "", errors.New("not a CA limited to signing server certificates (MaxPathLen 0)")
	case c.CheckSignatureFrom(c) != nil:
		return "", errors.New("not self-signed")
	case !c.PermittedDNSDomainsCritical || len(c.PermittedDNSDomains) == 0 || len(c.PermittedIPRanges) == 0:
		return "", errors.New("not name-constrained")
	}
	for _, l := range [][]string{c.PermittedURIDomains, c.PermittedEmailAddresses} {
		if len(l) > 1 || len(l) == 1 && l[0] != NoneDomain {
			return "", errors.New("permits URIs or e-mail addresses")
		}
	}
	host := ""
	for _, d := range c.PermittedDNSDomains {
		if slices.Contains(PermittedDNSDomains, d) {
			continue
		}
		if host != "" {
			return "", errors.New("permits more than one host name")
		}
		if strings.HasPrefix(d, ".") || !slices.Contains(c.ExcludedDNSDomains, "."+d) {
			return "", fmt.Errorf("permits %q and its subdomains", d)
		}
		n, ip, err := devtls.NormalizeHost(d)
		if err != nil || ip.IsValid() {
			return "", fmt.Errorf("permits %q, which is not a host name", d)
		}
		host = n
	}
	for _, n := range c.PermittedIPRanges {
		ones, _ := n.Mask.Size()
		a, _ := netip.AddrFromSlice(n.IP)
		if !slices.Contains(PermittedIPRanges, netip.PrefixFrom(a.Unmap(), ones)) {
			return "", fmt.Errorf("permits %s", n)
		}
	}
	return host, nil
}

// ParseRoot parses a root certificate PEM and checks it with CheckRoot
// for the machine called hostname.
func ParseRoot(certPEM []byte, hostname string) (*x509.Certificate, error) {
	c, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("localca: root: %w", err)
	}
	if err := CheckRoot(c, hostname); err != nil {
		return nil, fmt.Errorf("localca: %s is not this machine's FLM local CA: %w", c.Subject, err)
	}
	return c, nil
}

// ParseRootForRemoval parses a root certificate PEM that is to be taken
// out of trust stores: any FLM root, of an earlier FLM or a former host
// name too. Never use it before adding a root to a trust store.
func ParseRootForRemoval(certPEM []byte) (*x509.Certificate, error) {
	c, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("localca: root: %w", err)
	}
	if _, err := checkBaseShape(c); err != nil {
		return nil, fmt.Errorf("localca: %s is not an FLM local CA: %w", c.Subject, err)
	}
	return c, nil
}

// parseStored parses the root kept in the store (the user's own,
// encrypted): the host name is not checked, since a renamed machine keeps
// its root.
func parseStored(certPEM []byte) (*x509.Certificate, error) {
	c, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("localca: root: %w", err)
	}
	if _, err := checkShape(c); err != nil {
		return nil, fmt.Errorf("localca: %s is not an FLM local CA: %w", c.Subject, err)
	}
	return c, nil
}

// Permits reports whether root's name constraints allow host (a DNS name
// or an IP address), as crypto/x509 decides.
func Permits(root *x509.Certificate, host string) bool {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ipPermitted(root, ip.Unmap())
	}
	return dnsPermitted(root, host)
}

// Issue signs a server certificate for hosts (DNS names and IP addresses)
// with the root, valid from now for ServerValidity (never beyond the
// root), and returns it and its key in PEM.
func Issue(rootPEM, rootKeyPEM []byte, hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	root, err := parseCert(rootPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("localca: root: %w", err)
	}
	rootKey, err := parseKey(rootKeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("localca: root key: %w", err)
	}
	if len(hosts) == 0 {
		return nil, nil, errors.New("localca: no host names for the server certificate")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("localca: generate server key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(-backdate).Add(ServerValidity)
	if notAfter.After(root.NotAfter) {
		notAfter = root.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"FLM"}, CommonName: hosts[0]},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip, err := netip.ParseAddr(h); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.Unmap().AsSlice()))
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		return nil, nil, fmt.Errorf("localca: sign server certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("localca: encode server key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// Manager keeps the root and the server certificate of one data dir. Its
// methods are safe for concurrent use. Several processes may share a store:
// each re-reads it before issuing, so they converge on one certificate.
type Manager struct {
	// Store holds the root and the server certificate (required).
	Store certs.Store
	// RootFile, if set, receives the root certificate (public, 0644)
	// whenever the root is loaded or created.
	RootFile string
	// Hostname is the machine's host name ("" = none).
	Hostname string
	// Addrs returns the LAN addresses to cover (nil =
	// devtls.PrivateInterfaceAddrs).
	Addrs func() []netip.Addr
	// Bind is the proxy's bind address; a specific address (not loopback,
	// not a wildcard) is covered too, and must be inside the constraints.
	Bind string
	// Interfaces returns every address of this machine's interfaces (nil =
	// net.InterfaceAddrs). An address another proxy of the data dir put
	// into the shared certificate is kept on reissue while it is one of
	// them.
	Interfaces func() []netip.Addr
	// OnReplace, if set, is told when a stored root is replaced (expiring,
	// or made by an earlier FLM: ErrOutdatedRoot) — devices trusting old
	// must be given the new root (install-ca again).
	OnReplace func(old *x509.Certificate, why error)
	// Now is the clock (nil = time.Now).
	Now func() time.Time
	// Log receives reissues and failures (nil = discard).
	Log *slog.Logger

	mu  sync.Mutex
	cur atomic.Pointer[tls.Certificate]
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) log() *slog.Logger {
	if m.Log != nil {
		return m.Log
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// LoadRoot returns the stored root certificate (certs.ErrNotFound if there
// is none), checked as ParseRootForRemoval does (an earlier FLM's root
// too): for uninstall-ca. It never creates one.
func LoadRoot(ctx context.Context, s certs.Store) (*x509.Certificate, error) {
	rec, err := s.Get(ctx, certs.LocalCARootID)
	if err != nil {
		return nil, err
	}
	return ParseRootForRemoval(rec.CertPEM)
}

// Root returns the root, creating and storing it if there is none, it
// expires within 30 days or it was made by an earlier FLM (a new root must
// be trusted again: created reports it, OnReplace is told), and exports it
// to RootFile.
func (m *Manager) Root(ctx context.Context) (root *x509.Certificate, created bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, created, err := m.rootLocked(ctx)
	if err != nil {
		return nil, false, err
	}
	root, err = parseStored(rec.CertPEM)
	return root, created, err
}

func (m *Manager) rootLocked(ctx context.Context) (certs.Record, bool, error) {
	now := m.now()
	rec, err := m.Store.Get(ctx, certs.LocalCARootID)
	switch {
	case err == nil:
		c, perr := parseCert(rec.CertPEM)
		if perr != nil {
			return certs.Record{}, false, fmt.Errorf("localca: stored root: %w", perr)
		}
		var why error
		if _, serr := checkShape(c); errors.Is(serr, ErrOutdatedRoot) {
			why = serr
		} else if serr != nil {
			return certs.Record{}, false, fmt.Errorf("localca: stored root %s is not an FLM local CA: %w", c.Subject, serr)
		} else if now.Add(certs.RenewBefore).Before(c.NotAfter) {
			return rec, false, m.export(rec.CertPEM)
		} else {
			why = errors.New("expires within 30 days")
		}
		m.log().Warn("local CA root replaced: run `flm security install-ca` again, and remove the old root from other devices", "why", why.Error(), "old_fingerprint", Fingerprint(c))
		if m.OnReplace != nil {
			m.OnReplace(c, why)
		}
	case !errors.Is(err, certs.ErrNotFound):
		return certs.Record{}, false, fmt.Errorf("localca: read root: %w", err)
	}
	certPEM, keyPEM, err := NewRoot(m.Hostname, now)
	if err != nil {
		return certs.Record{}, false, err
	}
	rec, err = certs.FromPEM(certs.LocalCARootID, certs.SourceLocalCA, certPEM, keyPEM, now)
	if err != nil {
		return certs.Record{}, false, err
	}
	if err := m.Store.Put(ctx, rec); err != nil {
		return certs.Record{}, false, fmt.Errorf("localca: store root: %w", err)
	}
	// Another process may have stored its own root at the same time: use
	// whichever the store kept.
	if rec, err = m.Store.Get(ctx, certs.LocalCARootID); err != nil {
		return certs.Record{}, false, fmt.Errorf("localca: read root: %w", err)
	}
	m.log().Info("local CA root created", "fingerprint", fingerprintPEM(rec.CertPEM))
	return rec, true, m.export(rec.CertPEM)
}

// export writes the root certificate to RootFile atomically, unless it
// already holds exactly that.
func (m *Manager) export(certPEM []byte) error {
	if m.RootFile == "" {
		return nil
	}
	if old, err := os.ReadFile(m.RootFile); err == nil && string(old) == string(certPEM) {
		return nil
	}
	dir := filepath.Dir(m.RootFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("localca: export root to %s: %w", m.RootFile, err)
	}
	tmp, err := os.CreateTemp(dir, ".local-ca-*.tmp")
	if err != nil {
		return fmt.Errorf("localca: export root to %s: %w", m.RootFile, err)
	}
	defer os.Remove(tmp.Name())
	_ = tmp.Chmod(0o644)
	if _, err := tmp.Write(certPEM); err != nil {
		tmp.Close()
		return fmt.Errorf("localca: export root to %s: %w", m.RootFile, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("localca: export root to %s: %w", m.RootFile, err)
	}
	if err := os.Rename(tmp.Name(), m.RootFile); err != nil {
		return fmt.Errorf("localca: export root to %s: %w", m.RootFile, err)
	}
	return nil
}

// Hosts returns the names the server certificate must cover now:
// localhost, 127.0.0.1, ::1, the host name, "<host>.local", the LAN
// addresses and a specific bind address — each only if the root permits it
// (the host name may have changed since the root was made; a LAN address
// outside the private ranges is not the LAN). An explicit bind address the
// root does not permit is an error.
func (m *Manager) Hosts(root *x509.Certificate) ([]string, error) {
	out := []string{}
	add := func(h string) bool {
		n, _, err := devtls.NormalizeHost(h)
		if err != nil || !Permits(root, n) {
			return false
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
		return true
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
		add(h)
	}
	if m.Hostname != "" {
		if !add(m.Hostname) {
			m.log().Warn("the host name is not in the local CA's name constraints (renamed machine?): not in the certificate", "host", m.Hostname)
		}
		add(devtls.MDNSName(m.Hostname))
	}
	addrs := m.Addrs
	if addrs == nil {
		addrs = devtls.PrivateInterfaceAddrs
	}
	for _, a := range addrs() {
		add(a.WithZone("").Unmap().String())
	}
	if b := bindHost(m.Bind); b != "" && !add(b) {
		return nil, fmt.Errorf("localca: bind address %s is %w (localhost, .local, .home.arpa, private addresses): packaged-ca serves the LAN only; use https-acme for a public address", b, ErrOutsideConstraints)
	}
	return out, nil
}

// bindHost is the specific address of a bind ("" for a wildcard, loopback
// or empty bind).
func bindHost(bind string) string {
	b := strings.TrimSpace(bind)
	if h, _, err := net.SplitHostPort(b); err == nil {
		b = h
	}
	b = strings.TrimSuffix(strings.TrimPrefix(b, "["), "]")
	if b == "" || b == "localhost" {
		return ""
	}
	if ip, err := netip.ParseAddr(b); err == nil && (ip.IsUnspecified() || ip.IsLoopback()) {
		return ""
	}
	return b
}

// Refresh makes sure the current server certificate covers Hosts and is
// not due for renewal, issuing (and storing) a new one if not, and serves
// it from the next handshake. reissued says whether it signed a new one.
// On error the certificate served so far stays.
func (m *Manager) Refresh(ctx context.Context) (reissued bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rootRec, _, err := m.rootLocked(ctx)
	if err != nil {
		return false, err
	}
	root, err := parseStored(rootRec.CertPEM)
	if err != nil {
		return false, err
	}
	hosts, err := m.Hosts(root)
	if err != nil {
		return false, err
	}
	now := m.now()
	rec, err := m.Store.Get(ctx, certs.LocalCAServerID)
	if err != nil && !errors.Is(err, certs.ErrNotFound) {
		return false, fmt.Errorf("localca: read server certificate: %w", err)
	}
	var stored []string
	if err == nil {
		pair, leaf, ok := chained(rec, root, now)
		if ok {
			stored = sans(leaf)
			if !certs.NeedsRenewal(leaf.NotBefore, leaf.NotAfter, now, nil) && covers(stored, hosts) {
				if cur := m.cur.Load(); cur == nil || !slices.Equal(cur.Certificate[0], pair.Certificate[0]) {
					m.cur.Store(pair)
				}
				return false, nil
			}
		}
	}
	hosts = m.keepCurrent(root, hosts, stored)
	certPEM, keyPEM, err := Issue(rootRec.CertPEM, rootRec.KeyPEM, hosts, now)
	if err != nil {
		return false, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("localca: load new server certificate: %w", err)
	}
	rec, err = certs.FromPEM(certs.LocalCAServerID, certs.SourceLocalCA, certPEM, keyPEM, now)
	if err != nil {
		return false, err
	}
	if err := m.Store.Put(ctx, rec); err != nil {
		return false, fmt.Errorf("localca: store server certificate: %w", err)
	}
	m.cur.Store(&pair)
	m.log().Info("local CA server certificate issued", "sans", hosts, "not_after", rec.NotAfter)
	return true, nil
}

// chained returns rec's key pair and leaf if it chains to root for TLS
// servers at now (every name in it within the root's constraints).
func chained(rec certs.Record, root *x509.Certificate, now time.Time) (*tls.Certificate, *x509.Certificate, bool) {
	pair, err := tls.X509KeyPair(rec.CertPEM, rec.KeyPEM)
	if err != nil {
		return nil, nil, false
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, nil, false
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, nil, false
	}
	return &pair, leaf, true
}

// sans are a leaf's DNS names and addresses, normalised.
func sans(leaf *x509.Certificate) []string {
	out := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap().String())
		}
	}
	return out
}

// covers reports whether have names every host of want. A stored
// certificate naming more than this proxy wants (the address another
// proxy of the data dir is bound to) is kept: two proxies with different
// binds share one certificate instead of replacing each other's.
func covers(have, want []string) bool {
	for _, h := range want {
		if !slices.Contains(have, h) {
			return false
		}
	}
	return true
}

// keepCurrent adds to hosts the addresses of the stored certificate that
// are still this machine's (an interface address, a LAN address or the
// bind) and permitted by root, so a reissue does not drop another proxy's
// bind address. Addresses the machine no longer has and names this proxy
// does not want (a former host name) are dropped: the set cannot grow
// without bound.
func (m *Manager) keepCurrent(root *x509.Certificate, hosts, stored []string) []string {
	var mine map[netip.Addr]bool
	for _, h := range stored {
		ip, err := netip.ParseAddr(h)
		if err != nil || slices.Contains(hosts, h) || !Permits(root, h) {
			continue
		}
		if mine == nil {
			mine = m.machineAddrs()
		}
		if mine[ip] {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// machineAddrs is every address this machine has now.
func (m *Manager) machineAddrs() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	addrs := m.Addrs
	if addrs == nil {
		addrs = devtls.PrivateInterfaceAddrs
	}
	ifaces := m.Interfaces
	if ifaces == nil {
		ifaces = interfaceAddrs
	}
	for _, a := range append(addrs(), ifaces()...) {
		out[a.WithZone("").Unmap()] = true
	}
	if b, err := netip.ParseAddr(bindHost(m.Bind)); err == nil {
		out[b.WithZone("").Unmap()] = true
	}
	return out
}

func interfaceAddrs() []netip.Addr {
	list, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range list {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// GetCertificate serves the current server certificate (for
// tls.Config.GetCertificate).
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.cur.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("localca: no server certificate yet")
}

// TLSConfig is FLM's server configuration (tlsconf.Server) serving
// GetCertificate.
func (m *Manager) TLSConfig() *tls.Config {
	tc := tlsconf.Server()
	tc.GetCertificate = m.GetCertificate
	return tc
}

// Maintain calls Refresh every interval (<= 0: DefaultInterval) until ctx
// ends. Failures are logged; the previous certificate keeps being served.
func (m *Manager) Maintain(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := m.Refresh(ctx); err != nil && ctx.Err() == nil {
				m.log().Error("local CA: keeping the current server certificate", "err", err)
			}
		}
	}
}

func parseCert(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

func parseKey(data []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("no PKCS#8 PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ECDSA", k)
	}
	return ek, nil
}

func fingerprintPEM(certPEM []byte) string {
	c, err := parseCert(certPEM)
	if err != nil {
		return ""
	}
	return Fingerprint(c)
}

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("localca: serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// dnsPermitted mirrors crypto/x509's DNS name constraint matching.
func dnsPermitted(c *x509.Certificate, name string) bool {
	name = strings.ToLower(name)
	for _, ex := range c.ExcludedDNSDomains {
		if domainMatches(name, ex) {
			return false
		}
	}
	for _, p := range c.PermittedDNSDomains {
		if domainMatches(name, p) {
			return true
		}
	}
	return len(c.PermittedDNSDomains) == 0
}

func domainMatches(name, constraint string) bool {
	constraint = strings.ToLower(constraint)
	if strings.HasPrefix(constraint, ".") {
		return strings.HasSuffix(name, constraint) && len(name) > len(constraint)
	}
	return name == constraint || strings.HasSuffix(name, "."+constraint)
}

func ipPermitted(c *x509.Certificate, ip netip.Addr) bool {
	in := func(n *net.IPNet) bool {
		a, ok := netip.AddrFromSlice(n.IP)
		ones, _ := n.Mask.Size()
		p, err := a.Unmap().Prefix(ones)
		return ok && err == nil && p.Contains(ip)
	}
	for _, n := range c.ExcludedIPRanges {
		if in(n) {
			return false
		}
	}
	for _, n := range c.PermittedIPRanges {
		if in(n) {
			return true
		}
	}
	return len(c.PermittedIPRanges) == 0
}
