package devtls

import (
	"bytes"
	"crypto/tls"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func addrs(t *testing.T, ss ...string) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestHostsFor(t *testing.T) {
	lan := addrs(t, "10.0.0.7", "192.168.1.5", "fd00::2")
	base := []string{"localhost", "127.0.0.1", "::1"}
	with := func(extra ...string) []string { return append(slices.Clone(base), extra...) }
	for _, tc := range []struct {
		bind, hostname string
		ifaddrs        []netip.Addr
		want           []string
	}{
		// Wildcard binds: every private address of the machine (IPv4 only
		// for 0.0.0.0), the host name and its mDNS name.
		{"0.0.0.0", "devbox", lan, with("devbox", "devbox.local", "10.0.0.7", "192.168.1.5")},
		{"0.0.0.0:8080", "devbox", lan, with("devbox", "devbox.local", "10.0.0.7", "192.168.1.5")},
		{"::", "devbox", lan, with("devbox", "devbox.local", "10.0.0.7", "192.168.1.5", "fd00::2")},
		{"[::]:8443", "devbox", lan, with("devbox", "devbox.local", "10.0.0.7", "192.168.1.5", "fd00::2")},
		{"0.0.0.0", "", lan, with("10.0.0.7", "192.168.1.5")},
		{"0.0.0.0", "devbox", nil, with("devbox", "devbox.local")},
		{"::", "box.example.com", addrs(t, "fd12::9"), with("box.example.com", "box.local", "fd12::9")},
		{"0.0.0.0", "mac.local", lan[:1], with("mac.local", "10.0.0.7")},
		{"0.0.0.0", "localhost", lan[:1], with("10.0.0.7")},
		// Loopback binds: nothing beyond the defaults.
		{"", "devbox", lan, with("devbox")},
		{"127.0.0.1", "devbox", lan, with("devbox")},
		{"127.0.0.2:9000", "devbox", lan, with("devbox")},
		{"[::1]:8443", "devbox", lan, with("devbox")},
		{"localhost", "devbox", lan, with("devbox")},
		// A specific address: that address and the mDNS name, not the
		// machine's other addresses.
		{"192.168.1.5:8080", "devbox", lan, with("devbox", "devbox.local", "192.168.1.5")},
		{"fe80::1%eth0", "devbox", lan, with("devbox", "devbox.local", "fe80::1")},
		{"203.0.113.7", "devbox", lan, with("devbox", "devbox.local", "203.0.113.7")},
	} {
		got := hostsFor(tc.bind, tc.hostname, tc.ifaddrs)
		if !slices.Equal(got, tc.want) {
			t.Errorf("hostsFor(%q, %q, %v) = %v, want %v", tc.bind, tc.hostname, tc.ifaddrs, got, tc.want)
		}
		if _, err := parseHosts(got); err != nil {
			t.Errorf("hostsFor(%q): Ensure would refuse it: %v", tc.bind, err)
		}
	}
}

func TestPrivateAddrs(t *testing.T) {
	in := []net.Addr{
		&net.IPNet{IP: net.ParseIP("192.168.1.5"), Mask: net.CIDRMask(24, 32)},
		&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)},
		&net.IPNet{IP: net.ParseIP("192.0.2.2"), Mask: net.CIDRMask(24, 32)},  // documentation range, public
		&net.IPNet{IP: net.ParseIP("172.32.0.1"), Mask: net.CIDRMask(16, 32)}, // just outside 172.16/12
		&net.IPNet{IP: net.ParseIP("172.31.9.9"), Mask: net.CIDRMask(16, 32)},
		&net.IPNet{IP: net.ParseIP("169.254.3.4"), Mask: net.CIDRMask(16, 32)},
		&net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)},
		&net.IPNet{IP: net.ParseIP("fd00::2"), Mask: net.CIDRMask(64, 128)},
		&net.IPNet{IP: net.ParseIP("2001:db8::1"), Mask: net.CIDRMask(64, 128)},
		&net.IPAddr{IP: net.ParseIP("10.9.8.7")},
		&net.IPNet{IP: net.ParseIP("192.168.1.5").To4(), Mask: net.CIDRMask(24, 32)}, // same address, 4-byte form
	}
	got := privateAddrs(in)
	want := addrs(t, "10.9.8.7", "172.31.9.9", "192.168.1.5", "fd00::2")
	if !slices.Equal(got, want) {
		t.Errorf("privateAddrs = %v, want %v", got, want)
	}
}

// machinePrivateAddrs is computed here independently of the package: every
// private address net.InterfaceAddrs reports, which is where the LAN URL a
// proxy prints comes from.
func machinePrivateAddrs(t *testing.T) []netip.Addr {
	t.Helper()
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, a := range ifaddrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsPrivate() {
			ip, _ := netip.AddrFromSlice(n.IP)
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// TestWildcardCertCoversMachine is the bug as a user meets it: a proxy bound
// to 0.0.0.0 or :: prints a LAN URL with one of the machine's private
// addresses, and a client trusting the dev CA must be able to connect there.
// Each address gets a real TLS server with the certificate Ensure made.
func TestWildcardCertCoversMachine(t *testing.T) {
	machine := machinePrivateAddrs(t)
	t.Logf("private interface addresses: %v", machine)
	hn := machineHostname()
	for _, bind := range []string{"0.0.0.0", "::"} {
		t.Run(bind, func(t *testing.T) {
			hosts := Hosts(bind)
			f := ensure(t, t.TempDir(), hosts, time.Now())
			pool, err := CAPool(f)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := ServerTLSConfig(f)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			for _, ip := range machine {
				if bind == "0.0.0.0" && !ip.Is4() {
					if slices.Contains(hosts, ip.String()) {
						t.Errorf("Hosts(0.0.0.0) names IPv6 %s, which an IPv4 bind does not serve", ip)
					}
					continue
				}
				want++
				ln, err := tls.Listen("tcp", netip.AddrPortFrom(ip, 0).String(), cfg)
				if err != nil {
					t.Fatalf("listen on %s: %v", ip, err)
				}
				go func() {
					c, err := ln.Accept()
					if err == nil {
						c.(*tls.Conn).Handshake()
						c.Close()
					}
				}()
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(),
					&tls.Config{RootCAs: pool, ServerName: ip.String()})
				if err != nil {
					t.Errorf("TLS to %s (a LAN URL of a %s proxy): %v", ip, bind, err)
				} else {
					c.Close()
				}
				ln.Close()
			}
			t.Logf("%s: verified %d address(es) over TLS", bind, want)
			if hn != "" && hn != "localhost" {
				verifyFor(t, f, time.Now(), hn, mdnsName(hn))
			}
			// The CA stays constrained to the defaults: the new names fit
			// in them, nothing public was let in to make them fit.
			ca := loadCert(t, f.CACert)
			if len(ca.PermittedIPRanges) != len(permittedIPRanges) {
				t.Errorf("CA permits %v, want only the default private ranges", ca.PermittedIPRanges)
			}
			for _, d := range ca.PermittedDNSDomains {
				if d != "localhost" && d != ".local" && d != hn {
					t.Errorf("CA permits extra DNS domain %q", d)
				}
			}
		})
	}
}

// TestAddressChangeReissues: a new LAN address (DHCP, another network)
// must give a certificate for it at the next start; an unchanged one must
// not touch the files.
func TestAddressChangeReissues(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	hn := "devbox"
	f := ensure(t, dir, hostsFor("0.0.0.0", hn, addrs(t, "192.168.1.5")), now)
	verifyFor(t, f, now, "192.168.1.5", "devbox.local")
	before := snap(t, f)

	ensure(t, dir, hostsFor("0.0.0.0", hn, addrs(t, "192.168.1.5")), now.Add(time.Hour))
	if same := snap(t, f); !bytes.Equal(same["cert"], before["cert"]) || !bytes.Equal(same["key"], before["key"]) {
		t.Error("certificate reissued although the addresses did not change")
	}

	ensure(t, dir, hostsFor("0.0.0.0", hn, addrs(t, "10.20.30.40")), now.Add(time.Hour))
	after := snap(t, f)
	if bytes.Equal(after["cert"], before["cert"]) || bytes.Equal(after["key"], before["key"]) {
		t.Fatal("certificate not reissued for a new LAN address")
	}
	if !bytes.Equal(after["ca"], before["ca"]) || !bytes.Equal(after["cakey"], before["cakey"]) {
		t.Error("CA replaced for a private address change (it would have to be trusted again)")
	}
	verifyFor(t, f, now, "10.20.30.40", "devbox.local", "localhost")
	leaf := loadCert(t, f.Cert)
	if err := leaf.VerifyHostname("192.168.1.5"); err == nil {
		t.Error("the reissued certificate still names the old address")
	}

	// An IPv6 ULA appearing on a dual-stack bind is a change too.
	ensure(t, dir, hostsFor("::", hn, addrs(t, "10.20.30.40", "fd00::2")), now.Add(time.Hour))
	if bytes.Equal(snap(t, f)["cert"], after["cert"]) {
		t.Error("certificate not reissued for a new IPv6 address")
	}
	verifyFor(t, f, now, "fd00::2", "10.20.30.40")
}

// TestHostsAcceptedByEnsure: whatever this machine's addresses, the default
// lists are valid input and verify for every name they contain.
func TestHostsAcceptedByEnsure(t *testing.T) {
	for _, bind := range []string{"0.0.0.0", "::", "127.0.0.1", "192.168.1.5"} {
		hosts := Hosts(bind)
		f := ensure(t, t.TempDir(), hosts, time.Now())
		verifyFor(t, f, time.Now(), hosts...)
		seen := map[string]bool{}
		for _, h := range hosts {
			if seen[h] {
				t.Errorf("Hosts(%q) repeats %q", bind, h)
			}
			seen[h] = true
		}
	}
}
