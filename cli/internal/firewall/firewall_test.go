package firewall

import (
	"context"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/flmerr"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name (or rewrites it with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", name, got, want)
	}
}

// TestPreviewGolden: what the wizard shows for each OS and tool, and the
// rollback script it saves, for a LAN proxy with TLS (port and port+1).
func TestPreviewGolden(t *testing.T) {
	for _, tc := range []struct {
		tool Tool
		cidr string
	}{
		{UFW, "192.168.1.0/24"}, {Firewalld, "192.168.1.0/24"}, {NFTables, "192.168.1.0/24"},
		{PF, "192.168.1.0/24"}, {Netsh, "192.168.1.0/24"},
		{UFW, "fd00:1::/64"}, {Firewalld, "fd00:1::/64"}, {NFTables, "fd00:1::/64"},
	} {
		name := string(tc.tool)
		if strings.Contains(tc.cidr, ":") {
			name += "-v6"
		}
		t.Run(name, func(t *testing.T) {
			r, err := Generate(tc.tool, Input{Ports: []int{8081, 8080}, CIDR: tc.cidr})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r.Ports, []int{8080, 8081}) || r.OS != OSOf(tc.tool) {
				t.Fatalf("rules %+v", r)
			}
			preview := strings.Join(Lines(r.OS, r.Apply), "\n") + "\n--- rollback\n" + strings.Join(Lines(r.OS, r.Rollback), "\n") + "\n"
			golden(t, name+".preview", preview)
			golden(t, name+".rollback"+ScriptExt(r.OS), Script(r.OS, "FLM firewall rollback", r.Rollback))
		})
	}
}

// TestFamilies: the rule names the address family of the CIDR, and an
// address alone is that one host.
func TestFamilies(t *testing.T) {
	for _, tc := range []struct {
		tool      Tool
		cidr      string
		want      string
		wantCIDR  string
		wantNotIn string
	}{
		{Firewalld, "10.1.2.3/8", `family="ipv4" source address="10.0.0.0/8"`, "10.0.0.0/8", "ipv6"},
		{Firewalld, "fd12::1/48", `family="ipv6" source address="fd12::/48"`, "fd12::/48", "ipv4"},
		{NFTables, "172.16.5.0/12", "ip saddr 172.16.0.0/12", "172.16.0.0/12", "ip6"},
		{NFTables, "fd12::/48", "ip6 saddr fd12::/48", "fd12::/48", " ip saddr"},
		{UFW, "192.168.1.7", "from 192.168.1.7/32", "192.168.1.7/32", "comment flm-proxy port"},
		{Netsh, "0.0.0.0/0", "remoteip=0.0.0.0/0", "0.0.0.0/0", "\""},
		{PF, "::/0", "from ::/0 to any port { 8080 }", "::/0", "quick proto udp"},
	} {
		r, err := Generate(tc.tool, Input{Ports: []int{8080}, CIDR: tc.cidr})
		if err != nil {
			t.Fatalf("%s %s: %v", tc.tool, tc.cidr, err)
		}
		all := strings.Join(Lines(r.OS, r.Apply), "\n")
		if r.CIDR != tc.wantCIDR || !strings.Contains(all, tc.want) || strings.Contains(all, tc.wantNotIn) {
			t.Errorf("%s %s: cidr %s, commands:\n%s", tc.tool, tc.cidr, r.CIDR, all)
		}
	}
}

// TestHostileInputs: nothing but a CIDR and port numbers is accepted, so
// no input can reach a shell or a rule as anything else.
func TestHostileInputs(t *testing.T) {
	bad := []string{
		"", " 192.168.1.0/24", "192.168.1.0/24 ", "192.168.1.0/24; rm -rf /", "192.168.1.0/24\nufw disable",
		"$(id)", "`id`", "192.168.1.0/24' ; echo '", `192.168.1.0/24" accept; rule family="ipv4`, "192.168.1.0/33",
		"192.168.1.0/24/8", "any", "192.168.1.0/-1", "fe80::1%eth0", "fe80::/10%eth0", "::ffff:192.168.1.0/120",
		"192.168.1.0/24 }; pass in all; {", "192.168.1.0/24,0.0.0.0/0", "192.168.1.0/24 remoteip=any",
	}
	for _, tool := range []Tool{UFW, Firewalld, NFTables, PF, Netsh} {
		for _, cidr := range bad {
			if r, err := Generate(tool, Input{Ports: []int{8080}, CIDR: cidr}); err == nil || flmerr.CodeOf(err) != flmerr.InvalidArgument {
				t.Errorf("%s accepted CIDR %q: %v %+v", tool, cidr, err, r)
			}
		}
		for _, ports := range [][]int{nil, {0}, {-1}, {65536}, {8080, 70000}, {1, 2, 3, 4, 5, 6, 7, 8, 9}} {
			if _, err := Generate(tool, Input{Ports: ports, CIDR: "10.0.0.0/8"}); err == nil {
				t.Errorf("%s accepted ports %v", tool, ports)
			}
		}
	}
	if _, err := Generate("iptables; id", Input{Ports: []int{80}, CIDR: "10.0.0.0/8"}); err == nil {
		t.Error("unknown tool accepted")
	}
	// What is accepted is written in canonical form only: no byte of the
	// input reaches the commands unparsed.
	r, err := Generate(UFW, Input{Ports: []int{8080}, CIDR: "192.168.001.0/24"})
	if err == nil {
		t.Errorf("leading zeros accepted: %+v", r)
	}
}

// TestDisplayQuoting: an argument with spaces or quotes is one word when
// pasted into the shell.
func TestDisplayQuoting(t *testing.T) {
	c := Command{Argv: []string{"x", "a b", "it's", "plain-1.2/3:4"}}
	if got, want := Display("linux", c), `x 'a b' 'it'\''s' plain-1.2/3:4`; got != want {
		t.Errorf("sh: %s, want %s", got, want)
	}
	if got, want := Display("windows", c), `x 'a b' 'it''s' plain-1.2/3:4`; got != want {
		t.Errorf("powershell: %s, want %s", got, want)
	}
}

func TestDetect(t *testing.T) {
	have := map[string]bool{"firewall-cmd": true, "nft": true}
	look := func(n string) (string, error) {
		if have[n] {
			return "/usr/sbin/" + n, nil
		}
		return "", errors.New("not found")
	}
	if got := Detect("linux", look); !slices.Equal(got, []Tool{Firewalld, NFTables}) {
		t.Errorf("linux: %v", got)
	}
	if got := Detect("darwin", look); len(got) != 0 {
		t.Errorf("darwin without pfctl: %v", got)
	}
	if got := ToolsFor("plan9"); got != nil {
		t.Errorf("plan9: %v", got)
	}
}

func TestPrivateCIDRs(t *testing.T) {
	mk := func(s string) net.Addr {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return n
	}
	addrs := []net.Addr{mk("127.0.0.1/8"), mk("192.168.1.23/24"), mk("192.168.1.40/24"), mk("8.8.8.8/24"),
		mk("fe80::1/64"), mk("fd00:abcd::5/64"), mk("10.20.30.40/16"), &net.IPAddr{IP: net.ParseIP("10.0.0.1")}}
	got := PrivateCIDRs(addrs)
	if want := []string{"192.168.1.0/24", "fd00:abcd::/64", "10.20.0.0/16"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestApply runs the rules with a fake runner (this machine's firewall is
// never touched): the rollback script is written before anything runs,
// every command is logged with its output, and a failure stops the rest.
func TestApply(t *testing.T) {
	r, err := Generate(Firewalld, Input{Ports: []int{8080, 8081}, CIDR: "192.168.1.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "logs", "security")
	now := time.Date(2026, 12, 2, 19, 30, 0, 0, time.UTC)
	var ran [][]string
	rollback := filepath.Join(dir, "firewall-rollback-20261202T193000Z.sh")
	run := func(_ context.Context, argv []string, _ string) ([]byte, error) {
		if _, err := os.Stat(rollback); err != nil {
			t.Errorf("a command ran before the rollback script was saved: %v", err)
		}
		ran = append(ran, argv)
		return []byte("success\n"), nil
	}
	res, err := Apply(context.Background(), r, run, dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ran != 3 || len(ran) != 3 || res.RollbackScript != rollback || !slices.Equal(ran[2], []string{"firewall-cmd", "--reload"}) {
		t.Fatalf("applied %+v, ran %v", res, ran)
	}
	script, _ := os.ReadFile(res.RollbackScript)
	if !strings.Contains(string(script), "'--remove-rich-rule=rule family=\"ipv4\" source address=\"192.168.1.0/24\" port port=\"8080\"") {
		t.Errorf("rollback script:\n%s", script)
	}
	if st, _ := os.Stat(res.RollbackScript); st.Mode().Perm() != 0o700 {
		t.Errorf("rollback script mode %v", st.Mode())
	}
	log, _ := os.ReadFile(res.Log)
	if res.Log != filepath.Join(dir, "firewall-20261202T193000Z.log") || strings.Count(string(log), "\n$ firewall-cmd") != 3 ||
		strings.Count(string(log), "  success\nok\n") != 3 {
		t.Errorf("log %s:\n%s", res.Log, log)
	}

	// A failing command: the rest do not run; the error names the
	// rollback script; the log records the failure.
	ran = nil
	run2 := func(_ context.Context, argv []string, _ string) ([]byte, error) {
		ran = append(ran, argv)
		if len(ran) == 2 {
			return []byte("Error: INVALID_RULE\n"), errors.New("exit status 1")
		}
		return nil, nil
	}
	res, err = Apply(context.Background(), r, run2, dir, now.Add(time.Second))
	if err == nil || res.Ran != 1 || len(ran) != 2 || !strings.Contains(err.Error(), "INVALID_RULE") || !strings.Contains(err.Error(), res.RollbackScript) {
		t.Fatalf("failure: %v, %+v, ran %v", err, res, ran)
	}
	log, _ = os.ReadFile(res.Log)
	if !strings.Contains(string(log), "FAILED: exit status 1") {
		t.Errorf("log:\n%s", log)
	}
	// The same second again: files are never overwritten.
	if _, err := Apply(context.Background(), r, run, dir, now); err == nil {
		t.Error("Apply overwrote an earlier rollback script")
	}
}

// TestApplyStdin: pf reads its rule from standard input.
func TestApplyStdin(t *testing.T) {
	r, err := Generate(PF, Input{Ports: []int{8443}, CIDR: "10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	var stdin []string
	_, err = Apply(context.Background(), r, func(_ context.Context, _ []string, in string) ([]byte, error) {
		stdin = append(stdin, in)
		return nil, nil
	}, t.TempDir(), time.Now())
	if err != nil || stdin[0] != "pass in quick proto tcp from 10.0.0.0/8 to any port { 8443 }\n" || stdin[1] != "" {
		t.Fatalf("%v %q", err, stdin)
	}
}
