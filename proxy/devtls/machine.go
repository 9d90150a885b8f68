package devtls

import "net/netip"

// The machine facts dev-selfsigned's certificate is made from, exported so
// that the local CA (proxy/localca) names exactly the same host and LAN
// addresses: one rule for "what is this machine called on the LAN".

// PrivateInterfaceAddrs returns the private unicast addresses (RFC 1918,
// RFC 4193) of the machine's interfaces, IPv4 first, each in ascending
// order. The CLI's LAN URL is the first private IPv4 address of the same
// interfaces, so it is always one of them.
func PrivateInterfaceAddrs() []netip.Addr { return privateInterfaceAddrs() }

// MachineHostname returns the machine's host name, normalised (lower case,
// no trailing dot), or "" when it is not usable as a DNS name.
func MachineHostname() string { return machineHostname() }

// MDNSName returns "<first label of hostname>.local", the name Avahi and
// Bonjour announce (hostname itself if it already ends in .local), or ""
// for an empty or "localhost" host name.
func MDNSName(hostname string) string { return mdnsName(hostname) }

// NormalizeHost returns the canonical form of a DNS name or IP address
// (lower case, brackets, IPv6 zone and trailing dot removed, IPv4-mapped
// addresses unmapped) and, for an address, the address. A string that is
// neither is an error.
func NormalizeHost(h string) (string, netip.Addr, error) { return normalizeHost(h) }
