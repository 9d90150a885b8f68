package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
)

// The text output shows the stored document, not a re-encoding of it:
// decoded into any, an x_ value of 1e400 printed as null, a large integer
// lost its last digits, keys came out sorted and "<" as \u003c.
func TestPolicyTextPrintsTheDocumentAsStored(t *testing.T) {
	dir := t.TempDir()
	doc := `{"ip_whitelist":["10.0.0.0/8"],"x_zeta":1e400,"x_big":12345678901234567890,"x_alpha":"<a&b>"}`
	const want = `{
  "ip_whitelist": [
    "10.0.0.0/8"
  ],
  "cors": {
    "allowed_origins": []
  },
  "x_zeta": 1e400,
  "x_big": 12345678901234567890,
  "x_alpha": "<a&b>"
}
`
	set := ok(t, dir, "--format", "text", "security", "policy", "set", "--json", doc).stdout
	show := ok(t, dir, "--format", "text", "security", "policy", "show").stdout
	for what, out := range map[string]string{"set": set, "show": show} {
		if !strings.HasPrefix(out, want) {
			t.Errorf("policy %s printed\n%s\nwant\n%s", what, out, want)
		}
	}
}

// Commands that change what proxies enforce exit 0 when a proxy did not
// confirm (the change is stored); the text must leave no doubt about it.
func TestProxiesTextNamesEveryProxyThatDidNotConfirm(t *testing.T) {
	var b bytes.Buffer
	proxiesText(&b, []proxyctl.Result{
		{HandleID: "proxy-8080", Applied: &proxyctl.Applied{Generation: 3}},
		{HandleID: "proxy-9090", Code: flmerr.ProxyNotRunning, Error: "the control channel of proxy-9090 did not answer in time"},
	})
	want := "Applied by 1 of 2 running proxy(ies).\n" +
		"warning: the change is stored, but proxy proxy-9090 did NOT confirm it and may still enforce the previous state " +
		"(PROXY_NOT_RUNNING: the control channel of proxy-9090 did not answer in time); run `flm proxy reload --handle-id proxy-9090`, or restart it\n"
	if b.String() != want {
		t.Fatalf("text =\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	proxiesText(&b, []proxyctl.Result{{Code: flmerr.DBError, Error: "cannot list the running proxies: disk gone; run `flm proxy reload --all`"}})
	if got := b.String(); got != "warning: the change is stored, but NO running proxy was reached (DB_ERROR): cannot list the running proxies: disk gone; run `flm proxy reload --all`\n" {
		t.Fatalf("text = %q", got)
	}
	b.Reset()
	if proxiesText(&b, nil); b.Len() != 0 {
		t.Fatalf("no proxy running printed %q", b.String())
	}
}
