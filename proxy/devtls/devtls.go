package devtls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/unjuno/flm/proxy/tlsconf"
)

// File names inside the certificate directory.
const (
	caCertName     = "ca.pem"
	caKeyName      = "ca-key.pem"
	serverCertName = "server.pem"
	serverKeyName  = "server-key.pem"
)

const (
	caValidityYears = 10
	// serverValidity is the longest validity browsers accept for a leaf.
	serverValidity = 397 * 24 * time.Hour
	// renewBefore: certificates with less than this left are replaced.
	renewBefore = 30 * 24 * time.Hour
	// backdate tolerates small clock differences between machines.
	backdate = time.Hour
)

// permittedIPRanges are the private / local ranges every dev CA may sign for.
var permittedIPRanges = []string{
	"127.0.0.0/8", "::1/128",
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
	"169.254.0.0/16", "fc00::/7", "fe80::/10",
}

// ensureMu serialises Ensure within the process.
var ensureMu sync.Mutex

// Files holds the paths of the generated files inside a directory.
type Files struct{ CACert, CAKey, Cert, Key string }

// FilesIn returns the paths the dev certificates have (or will have) in dir,
// without touching the file system. Use it to find the CA of an already
// running proxy, e.g. for [CAPool].
func FilesIn(dir string) Files {
	return Files{
		CACert: filepath.Join(dir, caCertName),
		CAKey:  filepath.Join(dir, caKeyName),
		Cert:   filepath.Join(dir, serverCertName),
		Key:    filepath.Join(dir, serverKeyName),
	}
}

// Ensure returns dev certificates in dir (created 0700 if missing) whose
// server certificate covers every name in hosts (DNS names and IP addresses,
// e.g. "localhost", "127.0.0.1", "::1", the host name, the bind address) and
// is valid at now for at least 30 more days.
//
// Existing files are reused when they are valid, signed by the CA in dir and
// cover all hosts; otherwise a new server certificate is issued, reusing the
// CA while it is valid for 30 more days, matches its key and permits every
// host. Files are written atomically; certificates 0644, keys 0600. A CA key
// file with permissions looser than 0600 is an error. Invalid hosts are an
// error, and nothing is written then. Every error names the file concerned.
func Ensure(dir string, hosts []string, now time.Time) (Files, error) {
	if dir == "" {
		return Files{}, errors.New("devtls: empty certificate directory")
	}
	hs, err := parseHosts(hosts)
	if err != nil {
		return Files{}, err
	}
	f := FilesIn(dir)

	ensureMu.Lock()
	defer ensureMu.Unlock()

	if err := ensureDir(dir); err != nil {
		return Files{}, err
	}
	if err := checkCAKeyMode(f.CAKey); err != nil {
		return Files{}, err
	}

	ca, caKey, err := loadCA(f, hs, now)
	var fatal *fileError
	if errors.As(err, &fatal) {
		return Files{}, err
	}
	newCA := err != nil
	if newCA {
		ca, caKey, err = createCA(f, hs, machineHostname(), now)
		if err != nil {
			return Files{}, err
		}
	} else {
		err := checkServer(f, ca, hs, now)
		if err == nil {
			return f, nil
		}
		if errors.As(err, &fatal) {
			return Files{}, err
		}
	}
	if err := createServer(f, ca, caKey, hs, now); err != nil {
		return Files{}, err
	}
	return f, nil
}

// fileError is a failure that must be reported (an unreadable file, a failed
// write), as opposed to content that is merely invalid and gets replaced.
type fileError struct{ err error }

func (e *fileError) Error() string { return e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

func fatalf(format string, args ...any) error {
	return &fileError{fmt.Errorf(format, args...)}
}

// ServerTLSConfig loads f.Cert and f.Key and returns a server configuration
// with FLM's TLS parameters (tlsconf.Server): TLS 1.2 minimum, only ECDHE
// AEAD cipher suites (AES-GCM, ChaCha20-Poly1305) for TLS 1.2, curves
// X25519 and P-256, and ALPN h2 + http/1.1.
func ServerTLSConfig(f Files) (*tls.Config, error) {
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return nil, fmt.Errorf("devtls: read server certificate %s: %w", f.Cert, err)
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return nil, fmt.Errorf("devtls: read server key %s: %w", f.Key, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("devtls: load key pair %s / %s: %w", f.Cert, f.Key, err)
	}
	tc := tlsconf.Server()
	tc.Certificates = []tls.Certificate{cert}
	return tc, nil
}

// CAPool returns a pool holding the CA certificate f.CACert, for clients that
// trust the dev CA (tests, `flm chat`).
func CAPool(f Files) (*x509.CertPool, error) {
	data, err := os.ReadFile(f.CACert)
	if err != nil {
		return nil, fmt.Errorf("devtls: read CA certificate %s: %w", f.CACert, err)
	}
	ca, err := parseCertPEM(data)
	if err != nil {
		return nil, fmt.Errorf("devtls: CA certificate %s: %w", f.CACert, err)
	}
	if !ca.IsCA {
		return nil, fmt.Errorf("devtls: CA certificate %s: not a CA certificate", f.CACert)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, nil
}

// Hosts returns the default SAN list for a bind address: localhost,
// 127.0.0.1, ::1, the machine host name (if any), and then by bind:
//
//   - a loopback or empty bind adds nothing more;
//   - a wildcard bind (0.0.0.0, ::) adds "<host>.local" and every private
//     address (10/8, 172.16/12, 192.168/16, fc00::/7) the machine's
//     interfaces have now: IPv4 only for 0.0.0.0, IPv4 and IPv6 for ::
//     (dual stack). This covers the LAN URL a proxy prints, which is one
//     of those addresses, and the mDNS name other devices reach it by;
//   - any other bind adds "<host>.local" and bind itself.
//
// bind may carry a port ("0.0.0.0:8080", "[::1]:8443"). Entries are
// normalised (lower case, IPv6 zone dropped) and deduplicated; names that
// cannot be certificate SANs are skipped. Every entry is inside the dev
// CA's default name constraints except a public bind address or name.
//
// The list depends on the machine's addresses at the time of the call, so
// a proxy started after the LAN address changed asks [Ensure] for a name
// the old certificate lacks, and gets a new one.
func Hosts(bind string) []string {
	return hostsFor(bind, machineHostname(), privateInterfaceAddrs())
}

// hostsFor is [Hosts] with the machine's host name and private interface
// addresses given, so that it can be tested with any set of them.
func hostsFor(bind, hostname string, ifaddrs []netip.Addr) []string {
	out := []string{"localhost", "127.0.0.1", "::1"}
	seen := map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}
	add := func(h string) {
		n, ip, err := normalizeHost(h)
		if err != nil || seen[n] {
			return
		}
		if ip.IsValid() && ip.IsUnspecified() {
			return
		}
		seen[n] = true
		out = append(out, n)
	}
	if hostname != "" {
		add(hostname)
	}
	bind = strings.TrimSpace(bind)
	if host, _, err := net.SplitHostPort(bind); err == nil {
		bind = host
	}
	bind = strings.TrimSuffix(strings.TrimPrefix(bind, "["), "]")
	bindIP, err := netip.ParseAddr(bind)
	if err == nil {
		bindIP = bindIP.WithZone("").Unmap()
	}
	switch {
	case bind == "" || bind == "localhost" || err == nil && bindIP.IsLoopback():
		// Reachable from this machine only: the defaults name it.
	case err == nil && bindIP.IsUnspecified():
		add(mdnsName(hostname))
		for _, ip := range ifaddrs {
			if ip.Is4() || bindIP.Is6() {
				add(ip.String())
			}
		}
	default:
		add(mdnsName(hostname))
		add(bind)
	}
	return out
}

// mdnsName is the name other devices of the LAN resolve this machine by
// over multicast DNS: the first label of the host name plus ".local" (what
// Avahi and Bonjour announce), or "" without a usable host name.
func mdnsName(hostname string) string {
	if hostname == "" || strings.HasSuffix(hostname, ".local") {
		return hostname
	}
	label, _, _ := strings.Cut(hostname, ".")
	if label == "localhost" {
		return ""
	}
	return label + ".local"
}

// privateInterfaceAddrs returns the private unicast addresses (RFC 1918,
// RFC 4193) of the machine's interfaces, IPv4 first, each in ascending
// order. Like the LAN URL a proxy prints, it does not look at whether an
// interface is up: a certificate that names an idle interface's address
// costs nothing, one that misses the printed URL breaks it.
func privateInterfaceAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	return privateAddrs(addrs)
}

func privateAddrs(addrs []net.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		var ip net.IP
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		}
		if !ip.IsPrivate() {
			continue
		}
		if p, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, p.Unmap())
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

// ---------------------------------------------------------------------------
// Hosts

type hostSet struct {
	all []string // normalised, in the caller's order, deduplicated
	dns []string
	ips []netip.Addr
}

func parseHosts(hosts []string) (hostSet, error) {
	var hs hostSet
	seen := map[string]bool{}
	for _, h := range hosts {
		n, ip, err := normalizeHost(h)
		if err != nil {
			return hostSet{}, err
		}
		if ip.IsValid() && ip.IsUnspecified() {
			return hostSet{}, fmt.Errorf("devtls: host %q: unspecified address cannot be a certificate name", h)
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		hs.all = append(hs.all, n)
		if ip.IsValid() {
			hs.ips = append(hs.ips, ip)
		} else {
			hs.dns = append(hs.dns, n)
		}
	}
	if len(hs.all) == 0 {
		return hostSet{}, errors.New("devtls: no hosts given for the server certificate")
	}
	return hs, nil
}

// normalizeHost returns the canonical form of h and, for an IP address, the
// address (zone dropped, IPv4-mapped addresses unmapped).
func normalizeHost(h string) (string, netip.Addr, error) {
	s := strings.TrimSpace(h)
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		ip = ip.WithZone("").Unmap()
		return ip.String(), ip, nil
	}
	s = strings.TrimSuffix(strings.ToLower(s), ".")
	if !validDNSName(s) {
		return "", netip.Addr{}, fmt.Errorf("devtls: host %q is neither an IP address nor a valid DNS name", h)
	}
	return s, netip.Addr{}, nil
}

// validDNSName accepts lower-case ASCII host names (letters, digits, '-',
// '_'), without wildcards.
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	// An all-numeric dotted name would be confused with an IPv4 address.
	if strings.Trim(s, "0123456789.") == "" {
		return false
	}
	return true
}

// machineHostname returns the normalised host name, or "" if there is none
// usable as a DNS name.
func machineHostname() string {
	hn, err := os.Hostname()
	if err != nil {
		return ""
	}
	n, ip, err := normalizeHost(hn)
	if err != nil || ip.IsValid() {
		return ""
	}
	return n
}

// ---------------------------------------------------------------------------
// File system

func ensureDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil:
		if !fi.IsDir() {
			return fmt.Errorf("devtls: certificate directory %s is not a directory", dir)
		}
		return nil
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("devtls: create certificate directory %s: %w", dir, err)
		}
		// MkdirAll is subject to the umask, which can only remove bits;
		// make the mode exact anyway.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("devtls: chmod certificate directory %s: %w", dir, err)
		}
		return nil
	default:
		return fmt.Errorf("devtls: certificate directory %s: %w", dir, err)
	}
}

// keyModeOK reports whether a private key file's mode is at most 0600.
// Windows has no Unix permission bits, so there it always is.
func keyModeOK(mode fs.FileMode) bool {
	return runtime.GOOS == "windows" || mode.Perm()&^0o600 == 0
}

func checkCAKeyMode(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("devtls: CA key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("devtls: CA key %s is not a regular file", path)
	}
	if !keyModeOK(fi.Mode()) {
		return fmt.Errorf("devtls: CA key %s has mode %#o, looser than 0600; refusing to use it "+
			"(it may have been read by others: delete it to generate a new CA, or chmod 600 it if you are sure)",
			path, fi.Mode().Perm())
	}
	return nil
}

// readOptional reads path; a missing file yields (nil, nil), other read
// failures a fatal error naming the file.
func readOptional(path, what string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fatalf("devtls: read %s %s: %w", what, path, err)
	}
	return data, nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, fsynced and renamed over path.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fatalf("devtls: write %s: %w", path, err)
	}
	name := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(mode); err != nil && runtime.GOOS != "windows" {
		return fatalf("devtls: write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fatalf("devtls: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fatalf("devtls: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fatalf("devtls: write %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		return fatalf("devtls: write %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename durable where the platform supports it.
func syncDir(dir string) {
	if runtime.GOOS == "windows" {
		return
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// ---------------------------------------------------------------------------
// PEM and keys

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no CERTIFICATE PEM block")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

func parseKeyPEM(data []byte) (*ecdsa.PrivateKey, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no private key PEM block")
		}
		switch block.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("private key is %T, want ECDSA", k)
			}
			return ek, nil
		case "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(block.Bytes)
		}
	}
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func keyMatches(k *ecdsa.PrivateKey, pub crypto.PublicKey) bool {
	p, ok := k.Public().(*ecdsa.PublicKey)
	return ok && p.Equal(pub)
}

func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, err
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// ---------------------------------------------------------------------------
// CA

// loadCA returns the CA in dir if it can be reused for hs at now. A
// *fileError means the files could not be read; any other error means the
// CA must be replaced.
func loadCA(f Files, hs hostSet, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := readOptional(f.CACert, "CA certificate")
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := readOptional(f.CAKey, "CA key")
	if err != nil {
		return nil, nil, err
	}
	if certPEM == nil || keyPEM == nil {
		return nil, nil, errors.New("CA missing")
	}
	ca, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, nil, err
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case !keyMatches(key, ca.PublicKey):
		return nil, nil, errors.New("CA key does not match the CA certificate")
	case !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage&x509.KeyUsageCertSign == 0:
		return nil, nil, errors.New("not a CA certificate")
	case ca.CheckSignatureFrom(ca) != nil:
		return nil, nil, errors.New("CA certificate is not self-signed")
	case now.Before(ca.NotBefore):
		return nil, nil, errors.New("CA certificate not yet valid")
	case !now.Add(renewBefore).Before(ca.NotAfter):
		return nil, nil, errors.New("CA certificate expires within 30 days")
	case len(ca.PermittedDNSDomains) == 0 && len(ca.PermittedIPRanges) == 0:
		return nil, nil, errors.New("CA certificate is not name-constrained")
	}
	for _, h := range hs.dns {
		if !caPermitsDNS(ca, h) {
			return nil, nil, fmt.Errorf("CA name constraints do not permit %q", h)
		}
	}
	for _, ip := range hs.ips {
		if !caPermitsIP(ca, ip) {
			return nil, nil, fmt.Errorf("CA name constraints do not permit %s", ip)
		}
	}
	return ca, key, nil
}

// caPermitsDNS mirrors crypto/x509's matching of permitted DNS domains.
func caPermitsDNS(ca *x509.Certificate, name string) bool {
	for _, ex := range ca.ExcludedDNSDomains {
		if domainMatches(name, ex) {
			return false
		}
	}
	if len(ca.PermittedDNSDomains) == 0 {
		return true
	}
	for _, c := range ca.PermittedDNSDomains {
		if domainMatches(name, c) {
			return true
		}
	}
	return false
}

func domainMatches(name, constraint string) bool {
	name, constraint = strings.ToLower(name), strings.ToLower(constraint)
	if constraint == "" {
		return true
	}
	if strings.HasPrefix(constraint, ".") {
		return strings.HasSuffix(name, constraint) && len(name) > len(constraint)
	}
	return name == constraint || strings.HasSuffix(name, "."+constraint)
}

func caPermitsIP(ca *x509.Certificate, ip netip.Addr) bool {
	in := func(n *net.IPNet) bool {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			return false
		}
		ones, _ := n.Mask.Size()
		p, err := a.Prefix(ones)
		return err == nil && p.Contains(ip)
	}
	for _, n := range ca.ExcludedIPRanges {
		if in(n) {
			return false
		}
	}
	if len(ca.PermittedIPRanges) == 0 {
		return true
	}
	for _, n := range ca.PermittedIPRanges {
		if in(n) {
			return true
		}
	}
	return false
}

// caTemplate builds the CA certificate template for hs.
func caTemplate(hs hostSet, hostname string, now time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	cn := "FLM Development CA"
	if hostname != "" {
		cn += " (" + hostname + ")"
	}
	tmpl := &x509.Certificate{
		SerialNumber:                serial,
		Subject:                     pkix.Name{Organization: []string{"FLM"}, CommonName: cn},
		NotBefore:                   now.Add(-backdate),
		NotAfter:                    now.AddDate(caValidityYears, 0, 0),
		IsCA:                        true,
		BasicConstraintsValid:       true,
		MaxPathLen:                  0,
		MaxPathLenZero:              true,
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         []string{"localhost", ".local"},
	}
	if hostname != "" && !caPermitsDNS(tmpl, hostname) {
		tmpl.PermittedDNSDomains = append(tmpl.PermittedDNSDomains, hostname)
	}
	for _, c := range permittedIPRanges {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return nil, err
		}
		tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges, n)
	}
	// Requested hosts outside the defaults (a public bind address or name)
	// are permitted exactly, so that the server certificate verifies.
	for _, h := range hs.dns {
		if !caPermitsDNS(tmpl, h) {
			tmpl.PermittedDNSDomains = append(tmpl.PermittedDNSDomains, h)
		}
	}
	for _, ip := range hs.ips {
		if !caPermitsIP(tmpl, ip) {
			tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges, &net.IPNet{
				IP:   ip.AsSlice(),
				Mask: net.CIDRMask(ip.BitLen(), ip.BitLen()),
			})
		}
	}
	return tmpl, nil
}

func createCA(f Files, hs hostSet, hostname string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fatalf("devtls: generate CA key for %s: %w", f.CAKey, err)
	}
	tmpl, err := caTemplate(hs, hostname, now)
	if err != nil {
		return nil, nil, fatalf("devtls: build CA certificate %s: %w", f.CACert, err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fatalf("devtls: create CA certificate %s: %w", f.CACert, err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fatalf("devtls: parse new CA certificate %s: %w", f.CACert, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, fatalf("devtls: encode CA key %s: %w", f.CAKey, err)
	}
	// Key first: a crash in between leaves a mismatch that the next call
	// detects, never a certificate whose key is lost.
	if err := writeFileAtomic(f.CAKey, keyPEM, 0o600); err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(f.CACert, encodeCert(der), 0o644); err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

// ---------------------------------------------------------------------------
// Server certificate

// checkServer returns nil if the server certificate in dir can be reused.
// A *fileError means the files could not be read.
func checkServer(f Files, ca *x509.Certificate, hs hostSet, now time.Time) error {
	certPEM, err := readOptional(f.Cert, "server certificate")
	if err != nil {
		return err
	}
	keyPEM, err := readOptional(f.Key, "server key")
	if err != nil {
		return err
	}
	if certPEM == nil || keyPEM == nil {
		return errors.New("server certificate missing")
	}
	if fi, err := os.Stat(f.Key); err != nil || !fi.Mode().IsRegular() || !keyModeOK(fi.Mode()) {
		// A server key that others could read is replaced by a new one.
		return errors.New("server key has loose permissions")
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return err
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return err
	}
	if !keyMatches(key, cert.PublicKey) {
		return errors.New("server key does not match the certificate")
	}
	return verifyServer(cert, ca, hs, now)
}

// verifyServer checks that cert chains to ca at now, is a server
// certificate, covers every host and stays valid for 30 more days.
func verifyServer(cert, ca *x509.Certificate, hs hostSet, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return err
	}
	if !now.Add(renewBefore).Before(cert.NotAfter) {
		return errors.New("server certificate expires within 30 days")
	}
	for _, h := range hs.all {
		if err := cert.VerifyHostname(h); err != nil {
			return err
		}
	}
	return nil
}

func createServer(f Files, ca *x509.Certificate, caKey *ecdsa.PrivateKey, hs hostSet, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fatalf("devtls: generate server key for %s: %w", f.Key, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return fatalf("devtls: serial for %s: %w", f.Cert, err)
	}
	notBefore := now.Add(-backdate)
	notAfter := notBefore.Add(serverValidity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"FLM"}, CommonName: hs.all[0]},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              hs.dns,
	}
	for _, ip := range hs.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fatalf("devtls: create server certificate %s: %w", f.Cert, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fatalf("devtls: parse new server certificate %s: %w", f.Cert, err)
	}
	if err := verifyServer(cert, ca, hs, now); err != nil {
		return fatalf("devtls: new server certificate %s does not verify against %s: %w", f.Cert, f.CACert, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return fatalf("devtls: encode server key %s: %w", f.Key, err)
	}
	if err := writeFileAtomic(f.Key, keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(f.Cert, encodeCert(der), 0o644)
}
