package ui

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"rsc.io/qr"

	"github.com/unjuno/flm/core/proxyctl"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files")

// fakeFirewall records the commands the wizard would run: this machine's
// firewall is never touched by a test.
type fakeFirewall struct {
	mu   sync.Mutex
	ran  [][]string
	root bool
}

func (f *fakeFirewall) run(_ context.Context, argv []string, _ string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ran = append(f.ran, argv)
	return []byte("Rule added\n"), nil
}

func (f *fakeFirewall) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ran)
}

func wizardUI(t *testing.T, fw *fakeFirewall, logDir string) *testUI {
	return startUI(t, func(s *Services) {
		s.Wizard = Wizard{GOOS: "linux", LogDir: logDir, Run: fw.run,
			Privileged: func() bool { fw.mu.Lock(); defer fw.mu.Unlock(); return fw.root },
			LookPath: func(n string) (string, error) {
				if n == "ufw" {
					return "/usr/sbin/ufw", nil
				}
				return "", errors.New("not found")
			},
			LANCIDRs:         func() []string { return []string{"192.168.1.0/24"} },
			InstallCACommand: "flm --data-dir /d security install-ca\nsudo flm --data-dir /d security install-ca",
		}
	})
}

// TestWizardFirewall: the preview shows the exact rules and runs nothing;
// applying needs the consent of the request, root, this machine's OS and
// a valid CIDR — else nothing runs and no file is written; applied, the
// rollback script and the log are in the log directory.
func TestWizardFirewall(t *testing.T) {
	fw := &fakeFirewall{root: true}
	logDir := filepath.Join(t.TempDir(), "logs", "security")
	tu := wizardUI(t, fw, logDir)
	cookie, secret := tu.login(t)

	resp, body := tu.get(t, cookie, secret, "/api/wizard")
	var info struct {
		OS       string   `json:"os"`
		Tools    []string `json:"tools"`
		Detected []string `json:"detected"`
		LAN      []string `json:"lan_cidrs"`
		CanApply bool     `json:"can_apply"`
		Port     int      `json:"default_port"`
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil || resp.StatusCode != 200 || info.OS != "linux" ||
		strings.Join(info.Tools, ",") != "ufw,firewalld,nftables" || strings.Join(info.Detected, ",") != "ufw" ||
		info.LAN[0] != "192.168.1.0/24" || !info.CanApply || info.Port != 8080 {
		t.Fatalf("wizard info %d %s", resp.StatusCode, body)
	}

	resp, body = tu.post(t, cookie, secret, "/api/wizard/firewall", `{"tool":"ufw","mode":"packaged-ca","port":"8080","cidr":"192.168.1.0/24"}`)
	var pv struct {
		Apply    []string `json:"apply"`
		Rollback []string `json:"rollback"`
		CanApply bool     `json:"can_apply"`
	}
	_ = json.Unmarshal([]byte(body), &pv)
	want := []string{"ufw allow proto tcp from 192.168.1.0/24 to any port 8080 comment flm-proxy", "ufw allow proto tcp from 192.168.1.0/24 to any port 8081 comment flm-proxy"}
	if resp.StatusCode != 200 || strings.Join(pv.Apply, "\n") != strings.Join(want, "\n") || len(pv.Rollback) != 2 || !pv.CanApply {
		t.Fatalf("preview %d %s", resp.StatusCode, body)
	}
	// local-http opens the one port.
	_, body = tu.post(t, cookie, secret, "/api/wizard/firewall", `{"tool":"netsh","mode":"local-http","port":"9000","cidr":"10.0.0.0/8"}`)
	if !strings.Contains(body, `localport=9000 remoteip=10.0.0.0/8`) || strings.Contains(body, "9001") {
		t.Fatalf("local-http preview %s", body)
	}

	refused := []struct {
		name, body, field string
		status            int
	}{
		{"hostile CIDR", `{"tool":"ufw","mode":"packaged-ca","port":"8080","cidr":"192.168.1.0/24; ufw disable","consent":true}`, "cidr", 400},
		{"newline CIDR", `{"tool":"ufw","mode":"packaged-ca","port":"8080","cidr":"192.168.1.0/24\nufw disable","consent":true}`, "cidr", 400},
		{"hostile port", `{"tool":"ufw","mode":"packaged-ca","port":"8080 && id","cidr":"192.168.1.0/24","consent":true}`, "port", 400},
		{"port+1 too big", `{"tool":"ufw","mode":"dev-selfsigned","port":"65535","cidr":"192.168.1.0/24","consent":true}`, "port", 400},
		{"unknown tool", `{"tool":"iptables","mode":"packaged-ca","port":"8080","cidr":"192.168.1.0/24","consent":true}`, "tool", 400},
		{"no consent", `{"tool":"ufw","mode":"packaged-ca","port":"8080","cidr":"192.168.1.0/24"}`, "consent", 400},
		{"other OS", `{"tool":"netsh","mode":"packaged-ca","port":"8080","cidr":"192.168.1.0/24","consent":true}`, "tool", 400},
	}
	for _, tc := range refused {
		resp, body := tu.post(t, cookie, secret, "/api/wizard/firewall/apply", tc.body)
		if resp.StatusCode != tc.status || !strings.Contains(body, `"field":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, body)
		}
	}
	// Without the session secret (a cross-site page, or another local
	// server holding the cookie): refused.
	resp, _ = tu.do(t, "POST", "/api/wizard/firewall/apply", `{"tool":"ufw","mode":"packaged-ca","port":"8080","cidr":"0.0.0.0/0","consent":true}`,
		map[string]string{"Cookie": cookie, "Origin": tu.origin(), "Content-Type": "application/json"})
	if resp.StatusCode != 401 {
		t.Errorf("apply without the session secret: %d", resp.StatusCode)
	}
	// Not root: refused, never escalated.
	fw.mu.Lock()
	fw.root = false
	fw.mu.Unlock()
	resp, body = tu.post(t, cookie, secret, "/api/wizard/firewall/apply", `{"tool":"ufw","mode":"packaged-ca","port":"8080","cidr":"192.168.1.0/24","consent":true}`)
	if resp.StatusCode != 403 || !strings.Contains(body, "needs root") {
		t.Errorf("apply without root: %d %s", resp.StatusCode, body)
	}
	if fw.count() != 0 {
		t.Fatalf("refused requests ran %v", fw.ran)
	}
	if _, err := os.Stat(logDir); !os.IsNotExist(err) {
		t.Fatalf("refused requests wrote %s: %v", logDir, err)
	}

	fw.mu.Lock()
	fw.root = true
	fw.mu.Unlock()
	resp, body = tu.post(t, cookie, secret, "/api/wizard/firewall/apply", `{"tool":"ufw","mode":"packaged-ca","port":"8080","cidr":"192.168.1.0/24","consent":true}`)
	var ap struct {
		Ran            int    `json:"ran"`
		RollbackScript string `json:"rollback_script"`
		Log            string `json:"log"`
	}
	_ = json.Unmarshal([]byte(body), &ap)
	if resp.StatusCode != 200 || ap.Ran != 2 || fw.count() != 2 || filepath.Dir(ap.RollbackScript) != logDir ||
		!regexp.MustCompile(`/firewall-rollback-\d{8}T\d{6}Z\.sh$`).MatchString(ap.RollbackScript) {
		t.Fatalf("apply %d %s (ran %v)", resp.StatusCode, body, fw.ran)
	}
	script, _ := os.ReadFile(ap.RollbackScript)
	log, _ := os.ReadFile(ap.Log)
	if !strings.Contains(string(script), "ufw delete allow proto tcp from 192.168.1.0/24 to any port 8081") ||
		!strings.Contains(string(log), "$ ufw allow proto tcp from 192.168.1.0/24 to any port 8080 comment flm-proxy\n  Rule added\nok") {
		t.Errorf("rollback script:\n%s\nlog:\n%s", script, log)
	}
}

// TestWizardFirewallNoRunner: without a runner (or a log directory) the
// UI only shows the commands.
func TestWizardFirewallNoRunner(t *testing.T) {
	tu := startUI(t, func(s *Services) { s.Wizard = Wizard{GOOS: "linux", Privileged: func() bool { return true }} })
	cookie, secret := tu.login(t)
	_, body := tu.post(t, cookie, secret, "/api/wizard/firewall", `{"tool":"nftables","mode":"local-http","port":"8080","cidr":"fd00::/8"}`)
	if !strings.Contains(body, `"can_apply":false`) || !strings.Contains(body, "ip6 saddr fd00::/8") {
		t.Fatalf("preview %s", body)
	}
	resp, body := tu.post(t, cookie, secret, "/api/wizard/firewall/apply", `{"tool":"nftables","mode":"local-http","port":"8080","cidr":"fd00::/8","consent":true}`)
	if resp.StatusCode != 400 || !strings.Contains(body, "nothing changed") {
		t.Fatalf("apply %d %s", resp.StatusCode, body)
	}
}

// TestWizardPolicy: the allowlist step is judged by the policy service
// like the policy screen; a bad entry changes nothing; other fields stay.
func TestWizardPolicy(t *testing.T) {
	tu := startUI(t)
	if _, err := tu.policy.Set(context.Background(), []byte(`{"ip_whitelist":["127.0.0.1"],"cors":{"allowed_origins":["https://a.example"]},"rate_limit":{"rpm":60}}`)); err != nil {
		t.Fatal(err)
	}
	cookie, secret := tu.login(t)
	resp, body := tu.post(t, cookie, secret, "/api/wizard/policy", `{"ip_whitelist":"127.0.0.1\n192.168.1.0/33"}`)
	if resp.StatusCode != 400 || !strings.Contains(body, `"field":"ip_whitelist"`) || !strings.Contains(body, "ip_whitelist[1]") {
		t.Fatalf("invalid: %d %s", resp.StatusCode, body)
	}
	st, _ := tu.policy.Show(context.Background())
	if got := strings.Join(st.Policy.IPWhitelist, ","); got != "127.0.0.1" {
		t.Fatalf("an invalid allowlist changed the policy: %s", got)
	}
	resp, body = tu.post(t, cookie, secret, "/api/wizard/policy", `{"ip_whitelist":"127.0.0.1\n::1\n192.168.1.0/24"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("valid: %d %s", resp.StatusCode, body)
	}
	st, _ = tu.policy.Show(context.Background())
	if got := string(st.Policy.Document()); got != `{"ip_whitelist":["127.0.0.1","::1","192.168.1.0/24"],"cors":{"allowed_origins":["https://a.example"]},"rate_limit":{"rpm":60}}` {
		t.Fatalf("stored %s", got)
	}
}

// TestStartProxyACME: the Proxies form's https-acme fields reach
// proxyctl's Config; missing ones are named next to their field.
func TestStartProxyACME(t *testing.T) {
	tu := startUI(t)
	cookie, secret := tu.login(t)
	for _, tc := range []struct{ body, field string }{
		{`{"mode":"https-acme","port":"8443","bind":"0.0.0.0","acme_email":"a@b.example"}`, "acme_domain"},
		{`{"mode":"https-acme","port":"8443","bind":"0.0.0.0","acme_domain":"llm.example.com","acme_challenge":"dns-01"}`, "dns_provider"},
	} {
		resp, body := tu.post(t, cookie, secret, "/api/proxies/start", tc.body)
		if resp.StatusCode != 400 || !strings.Contains(body, `"field":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s", tc.body, resp.StatusCode, body)
		}
	}
	if len(tu.proxies.started) != 0 {
		t.Fatalf("started %v", tu.proxies.started)
	}
	resp, body := tu.post(t, cookie, secret, "/api/proxies/start", `{"mode":"https-acme","port":"8443","bind":"0.0.0.0","acme_domain":" llm.example.com ","acme_email":"a@b.example","acme_challenge":"dns-01","dns_provider":"cloudflare"}`)
	if resp.StatusCode != 200 || len(tu.proxies.started) != 1 {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	c := tu.proxies.started[0]
	if c.Mode != proxyctl.HTTPSACME || c.ACMEDomain != "llm.example.com" || c.ACMEEmail != "a@b.example" || c.ACMEChallenge != "dns-01" || c.DNSProvider != "cloudflare" {
		t.Fatalf("config %+v", c)
	}
}

// TestQRCode: the Status screen's QR image is the proxy's LAN URL, drawn
// module for module as rsc.io/qr encodes it (no decoder is available to
// the tests: the SVG is checked against the encoder's matrix, the three
// finder patterns and a golden file).
func TestQRCode(t *testing.T) {
	tu := startUI(t)
	const lan = "https://192.168.1.23:8081"
	tu.proxies.handles = []proxyctl.Handle{{ID: "proxy-8080", Running: true, Mode: proxyctl.PackagedCA,
		URLs: proxyctl.URLs{Local: "https://127.0.0.1:8081", LAN: lan}}}
	cookie, secret := tu.login(t)
	resp, body := tu.get(t, cookie, secret, "/api/qr?proxy=proxy-8080&which=lan")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml" || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("qr: %d %v", resp.StatusCode, resp.Header)
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "href") {
		t.Fatalf("the SVG carries script or links: %s", body)
	}
	code, err := qr.Encode(lan, qr.M)
	if err != nil {
		t.Fatal(err)
	}
	black := map[[2]int]bool{}
	for _, m := range regexp.MustCompile(`M(\d+) (\d+)h1v1h-1z`).FindAllStringSubmatch(body, -1) {
		var x, y int
		_, _ = fmtSscan(m[1], &x)
		_, _ = fmtSscan(m[2], &y)
		black[[2]int{x - 4, y - 4}] = true
	}
	n := 0
	for y := 0; y < code.Size; y++ {
		for x := 0; x < code.Size; x++ {
			if code.Black(x, y) != black[[2]int{x, y}] {
				t.Fatalf("module %d,%d differs from the encoder", x, y)
			}
			if code.Black(x, y) {
				n++
			}
		}
	}
	if n != len(black) || !strings.Contains(body, `viewBox="0 0 `+itoa(code.Size+8)+" "+itoa(code.Size+8)+`"`) {
		t.Fatalf("%d black modules drawn, %d encoded; svg %.200s", len(black), n, body)
	}
	// Finder patterns: a 7×7 ring with a 3×3 centre in three corners.
	for _, c := range [][2]int{{0, 0}, {code.Size - 7, 0}, {0, code.Size - 7}} {
		for y := 0; y < 7; y++ {
			for x := 0; x < 7; x++ {
				ring := x == 0 || y == 0 || x == 6 || y == 6
				centre := x >= 2 && x <= 4 && y >= 2 && y <= 4
				if black[[2]int{c[0] + x, c[1] + y}] != (ring || centre) {
					t.Fatalf("finder pattern at %v broken at %d,%d", c, x, y)
				}
			}
		}
	}
	golden := filepath.Join("testdata", "qr-lan.svg")
	if *updateGolden {
		_ = os.WriteFile(golden, []byte(body), 0o644)
	}
	if want, err := os.ReadFile(golden); err != nil || string(want) != body {
		t.Errorf("QR SVG differs from %s (%v)", golden, err)
	}
	for _, q := range []string{"proxy=proxy-8080&which=external", "proxy=other&which=lan", "proxy=proxy-8080&which=https://evil.example"} {
		if resp, _ := tu.get(t, cookie, secret, "/api/qr?"+q); resp.StatusCode != 404 {
			t.Errorf("%s: %d", q, resp.StatusCode)
		}
	}
	if resp, _ := tu.do(t, "GET", "/api/qr?proxy=proxy-8080&which=lan", "", nil); resp.StatusCode != 401 {
		t.Errorf("qr without a session: %d", resp.StatusCode)
	}
}

func fmtSscan(s string, v *int) (int, error) { return fmt.Sscan(s, v) }
func itoa(n int) string                      { return strconv.Itoa(n) }
