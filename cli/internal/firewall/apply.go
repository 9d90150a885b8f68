package firewall

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/unjuno/flm/core/flmerr"
)

// Runner runs one command (no shell) with stdin and returns its combined
// output. The CLI passes one that execs the program; tests pass a fake.
type Runner func(ctx context.Context, argv []string, stdin string) ([]byte, error)

// Applied is what Apply did.
type Applied struct {
	// Ran counts the commands that succeeded.
	Ran int `json:"ran"`
	// RollbackScript undoes the rules (written before the first command).
	RollbackScript string `json:"rollback_script"`
	// Log records each command, its output and its result.
	Log string `json:"log"`
}

// Apply writes the rollback script of r to dir, then runs r's commands in
// order, stopping at the first failure, and logs every command with its
// output to dir/firewall-<ts>.log. The caller has checked consent and
// privileges. dir is created (0700) when missing.
func Apply(ctx context.Context, r Rules, run Runner, dir string, now time.Time) (Applied, error) {
	if len(r.Apply) == 0 {
		return Applied{}, flmerr.New(flmerr.InvalidArgument, "firewall: no rules to apply")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Applied{}, flmerr.Wrap(err, flmerr.IOError, "firewall: create %s", dir)
	}
	ts := now.UTC().Format("20060102T150405Z")
	out := Applied{
		RollbackScript: filepath.Join(dir, "firewall-rollback-"+ts+ScriptExt(r.OS)),
		Log:            filepath.Join(dir, "firewall-"+ts+".log"),
	}
	title := fmt.Sprintf("FLM firewall rollback (%s, written %s): removes the rules FLM added for TCP ports %v from %s", r.Tool, ts, r.Ports, r.CIDR)
	if err := writeNew(out.RollbackScript, Script(r.OS, title, r.Rollback), 0o700); err != nil {
		return Applied{}, err
	}
	var log strings.Builder
	fmt.Fprintf(&log, "%s FLM firewall apply: tool %s, TCP ports %v from %s\nrollback: %s\n", now.UTC().Format(time.RFC3339), r.Tool, r.Ports, r.CIDR, out.RollbackScript)
	var failed error
	for i, c := range r.Apply {
		line := Display(r.OS, c)
		fmt.Fprintf(&log, "$ %s\n", line)
		b, err := run(ctx, c.Argv, c.Stdin)
		if len(b) > 0 {
			log.WriteString(indent(string(b)))
		}
		if err != nil {
			fmt.Fprintf(&log, "FAILED: %v\n", err)
			failed = flmerr.Wrap(err, flmerr.IOError, "firewall: command %d of %d failed (%s): %s; undo what ran with %s", i+1, len(r.Apply), line,
				strings.TrimSpace(firstLine(string(b))), out.RollbackScript)
			break
		}
		fmt.Fprintf(&log, "ok\n")
		out.Ran++
	}
	if err := writeNew(out.Log, log.String(), 0o600); err != nil && failed == nil {
		failed = err
	}
	return out, failed
}

func writeNew(path, text string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "firewall: write %s", path)
	}
	if _, err := f.WriteString(text); err != nil {
		_ = f.Close()
		return flmerr.Wrap(err, flmerr.IOError, "firewall: write %s", path)
	}
	if err := f.Close(); err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "firewall: write %s", path)
	}
	return nil
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	return "  " + strings.ReplaceAll(s, "\n", "\n  ") + "\n"
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// PrivateCIDRs are the private (RFC 1918, ULA) networks of addrs, as
// canonical CIDRs without duplicates: what a LAN allowlist usually is.
// Loopback, link-local and public addresses are left out.
func PrivateCIDRs(addrs []net.Addr) []string {
	var out []string
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if !ip.IsPrivate() {
			continue
		}
		ones, _ := n.Mask.Size()
		if ip.Is4() && ones > 32 {
			ones -= 96
		}
		p, err := ip.Prefix(ones)
		if err != nil {
			continue
		}
		s := p.String()
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// LocalPrivateCIDRs is PrivateCIDRs of this machine's interfaces.
func LocalPrivateCIDRs() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	return PrivateCIDRs(addrs)
}
