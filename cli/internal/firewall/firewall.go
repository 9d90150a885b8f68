// Package firewall writes the OS-specific rules that let a LAN (or the
// internet) reach an FLM proxy, and their rollback: ufw, firewalld and
// nftables on Linux, a pf anchor on macOS, `netsh advfirewall` on Windows.
//
// Generating is pure (Generate): it takes ports and one CIDR, validated
// strictly — ports are integers, the CIDR is parsed by net/netip and only
// its canonical form is written — so no input can add a word, a quote or
// a command to what is shown or run. Every command is an argv (run without
// a shell); Display quotes it for the OS's shell only for copying.
//
// Applying (Apply) is separate and needs explicit consent and privileges,
// which the caller checks: it writes the rollback script first, then runs
// each command through a Runner and logs what ran, with its output.
package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/unjuno/flm/core/flmerr"
)

// Tool is a firewall front end.
type Tool string

// The tools rules are written for.
const (
	UFW       Tool = "ufw"
	Firewalld Tool = "firewalld"
	NFTables  Tool = "nftables"
	PF        Tool = "pf"
	Netsh     Tool = "netsh"
)

// ToolsFor lists the tools of an OS (runtime.GOOS), in the order Detect
// prefers them.
func ToolsFor(goos string) []Tool {
	switch goos {
	case "linux":
		return []Tool{UFW, Firewalld, NFTables}
	case "darwin":
		return []Tool{PF}
	case "windows":
		return []Tool{Netsh}
	}
	return nil
}

// binaries are the programs whose presence shows a tool is installed.
var binaries = map[Tool]string{UFW: "ufw", Firewalld: "firewall-cmd", NFTables: "nft", PF: "pfctl", Netsh: "netsh"}

// Detect returns the tools of goos whose program lookPath finds (first:
// the one to suggest). ufw and firewalld are front ends over nftables, so
// when one of them is present it is the one to use.
func Detect(goos string, lookPath func(string) (string, error)) []Tool {
	var out []Tool
	for _, t := range ToolsFor(goos) {
		if _, err := lookPath(binaries[t]); err == nil {
			out = append(out, t)
		}
	}
	return out
}

// Input is what the rules allow: TCP to Ports from the addresses in CIDR.
type Input struct {
	Ports []int  `json:"ports"`
	CIDR  string `json:"cidr"`
}

// Command is one program run with its arguments (never through a shell),
// and what it reads on standard input.
type Command struct {
	Argv  []string `json:"argv"`
	Stdin string   `json:"stdin,omitempty"`
}

// Rules are the commands that open the ports, and those that undo them.
type Rules struct {
	Tool     Tool      `json:"tool"`
	OS       string    `json:"os"`
	Ports    []int     `json:"ports"`
	CIDR     string    `json:"cidr"`
	Apply    []Command `json:"apply"`
	Rollback []Command `json:"rollback"`
}

// OSOf is the GOOS a tool belongs to.
func OSOf(t Tool) string {
	switch t {
	case UFW, Firewalld, NFTables:
		return "linux"
	case PF:
		return "darwin"
	case Netsh:
		return "windows"
	}
	return ""
}

// Comment marks every rule FLM adds, so a person (and the nftables
// rollback) can find them.
const Comment = "flm-proxy"

// nftTable and nftChain are where the nftables variant adds its rule: the
// inet filter table's input chain of the stock /etc/nftables.conf
// (Debian, Fedora). A rule in a table of its own would not help: an
// accept in one table does not override a drop in another.
const (
	nftTable = "filter"
	nftChain = "input"
)

// pfAnchor is loaded under Apple's com.apple/* anchor, which the stock
// /etc/pf.conf evaluates: no edit of pf.conf is needed.
const pfAnchor = "com.apple/flm"

// Validate checks and canonicalizes in: 1-8 distinct ports in 1-65535 and
// one CIDR (an address alone means that one host).
func Validate(in Input) (ports []int, prefix netip.Prefix, err error) {
	if len(in.Ports) == 0 || len(in.Ports) > 8 {
		return nil, prefix, flmerr.New(flmerr.InvalidArgument, "firewall: want 1-8 ports, got %d", len(in.Ports))
	}
	for _, p := range in.Ports {
		if p < 1 || p > 65535 {
			return nil, prefix, flmerr.New(flmerr.InvalidArgument, "firewall: port %d: want 1-65535", p)
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	slices.Sort(ports)
	s := in.CIDR
	if s != strings.TrimSpace(s) || s == "" {
		return nil, prefix, flmerr.New(flmerr.InvalidArgument, "firewall: CIDR %q: want an address range such as 192.168.1.0/24", s)
	}
	if !strings.Contains(s, "/") {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil || a.Zone() != "" {
			return nil, prefix, flmerr.New(flmerr.InvalidArgument, "firewall: CIDR %q: want an address range such as 192.168.1.0/24", s)
		}
		prefix = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
	} else {
		p, perr := netip.ParsePrefix(s)
		if perr != nil {
			return nil, prefix, flmerr.New(flmerr.InvalidArgument, "firewall: CIDR %q: want an address range such as 192.168.1.0/24", s)
		}
		prefix = p
	}
	if prefix.Addr().Is4In6() {
		return nil, prefix, flmerr.New(flmerr.InvalidArgument, "firewall: CIDR %q: write IPv4 ranges as IPv4", s)
	}
	return ports, prefix.Masked(), nil
}

// Generate returns the rules of tool for in, or INVALID_ARGUMENT.
func Generate(tool Tool, in Input) (Rules, error) {
	ports, prefix, err := Validate(in)
	if err != nil {
		return Rules{}, err
	}
	cidr := prefix.String()
	v6 := prefix.Addr().Is6()
	r := Rules{Tool: tool, OS: OSOf(tool), Ports: ports, CIDR: cidr}
	portList := func(sep string) string {
		s := make([]string, len(ports))
		for i, p := range ports {
			s[i] = strconv.Itoa(p)
		}
		return strings.Join(s, sep)
	}
	switch tool {
	case UFW:
		for _, p := range ports {
			rule := []string{"allow", "proto", "tcp", "from", cidr, "to", "any", "port", strconv.Itoa(p)}
			r.Apply = append(r.Apply, Command{Argv: append(append([]string{"ufw"}, rule...), "comment", Comment)})
			r.Rollback = append(r.Rollback, Command{Argv: append([]string{"ufw", "delete"}, rule...)})
		}
	case Firewalld:
		fam := "ipv4"
		if v6 {
			fam = "ipv6"
		}
		for _, p := range ports {
			rich := fmt.Sprintf(`rule family="%s" source address="%s" port port="%d" protocol="tcp" accept`, fam, cidr, p)
			r.Apply = append(r.Apply, Command{Argv: []string{"firewall-cmd", "--permanent", "--add-rich-rule=" + rich}})
			r.Rollback = append(r.Rollback, Command{Argv: []string{"firewall-cmd", "--permanent", "--remove-rich-rule=" + rich}})
		}
		r.Apply = append(r.Apply, Command{Argv: []string{"firewall-cmd", "--reload"}})
		r.Rollback = append(r.Rollback, Command{Argv: []string{"firewall-cmd", "--reload"}})
	case NFTables:
		fam := "ip"
		if v6 {
			fam = "ip6"
		}
		r.Apply = append(r.Apply, Command{Argv: []string{"nft", "insert", "rule", "inet", nftTable, nftChain,
			fam, "saddr", cidr, "tcp", "dport", "{ " + portList(", ") + " }", "accept", "comment", Comment}})
		// Rules are deleted by handle; the handles are those carrying the
		// comment, found when the rollback runs.
		r.Rollback = append(r.Rollback, Command{Argv: []string{"sh", "-c",
			`nft -a list chain inet ` + nftTable + ` ` + nftChain + ` | sed -n 's/.*comment "` + Comment + `" # handle \([0-9][0-9]*\)$/\1/p' | ` +
				`while read -r h; do nft delete rule inet ` + nftTable + ` ` + nftChain + ` handle "$h"; done`}})
	case PF:
		r.Apply = append(r.Apply,
			Command{Argv: []string{"pfctl", "-a", pfAnchor, "-f", "-"},
				Stdin: fmt.Sprintf("pass in quick proto tcp from %s to any port { %s }\n", cidr, portList(" "))},
			Command{Argv: []string{"pfctl", "-E"}})
		r.Rollback = append(r.Rollback, Command{Argv: []string{"pfctl", "-a", pfAnchor, "-F", "rules"}})
	case Netsh:
		name := "FLM proxy " + portList(",")
		r.Apply = append(r.Apply, Command{Argv: []string{"netsh", "advfirewall", "firewall", "add", "rule", "name=" + name,
			"dir=in", "action=allow", "protocol=TCP", "localport=" + portList(","), "remoteip=" + cidr}})
		r.Rollback = append(r.Rollback, Command{Argv: []string{"netsh", "advfirewall", "firewall", "delete", "rule", "name=" + name,
			"dir=in", "protocol=TCP", "localport=" + portList(",")}})
	default:
		return Rules{}, flmerr.New(flmerr.InvalidArgument, "firewall: tool %q: want ufw, firewalld, nftables, pf or netsh", tool)
	}
	return r, nil
}

// Display is c as a line to paste into the OS's shell: POSIX sh for Linux
// and macOS, PowerShell for Windows.
func Display(goos string, c Command) string {
	q := shQuote
	if goos == "windows" {
		q = psQuote
	}
	parts := make([]string, len(c.Argv))
	for i, a := range c.Argv {
		parts[i] = q(a)
	}
	line := strings.Join(parts, " ")
	if c.Stdin != "" {
		if goos == "windows" {
			return psQuote(strings.TrimSuffix(c.Stdin, "\n")) + " | " + line
		}
		return "printf '%s\\n' " + shQuote(strings.TrimSuffix(c.Stdin, "\n")) + " | " + line
	}
	return line
}

// Lines are the commands as Display shows them.
func Lines(goos string, cs []Command) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = Display(goos, c)
	}
	return out
}

func plain(s string, extra string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./:,=@%+"+extra, r)) {
			return false
		}
	}
	return true
}

func shQuote(s string) string {
	if plain(s, "") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func psQuote(s string) string {
	if plain(s, "") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Script is the text of a script running cs in order, for goos's shell
// (a .sh for Linux and macOS, a .ps1 for Windows); title is its comment.
func Script(goos, title string, cs []Command) string {
	var b strings.Builder
	if goos == "windows" {
		b.WriteString("# " + title + "\r\n# Run in an elevated PowerShell (Run as administrator).\r\n$ErrorActionPreference = 'Continue'\r\n")
		for _, c := range cs {
			b.WriteString(Display(goos, c) + "\r\n")
		}
		return b.String()
	}
	b.WriteString("#!/bin/sh\n# " + title + "\n# Run as root (sudo sh <this file>).\nset -u\n")
	for _, c := range cs {
		b.WriteString(Display(goos, c) + "\n")
	}
	return b.String()
}

// ScriptExt is the file extension of goos's scripts.
func ScriptExt(goos string) string {
	if goos == "windows" {
		return ".ps1"
	}
	return ".sh"
}
