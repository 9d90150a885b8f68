package proxy

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/proxy/egress"
	"github.com/unjuno/flm/proxy/egress/egresstest"
	"github.com/unjuno/flm/tools/enginefake"
)

// TestEgressThroughSOCKS: a "remote" engine (on 127.0.0.2, registered by a
// name only the SOCKS server resolves) is reached through SOCKS; with the
// SOCKS server gone every API family answers 502 egress_unavailable in its
// own shape, nothing dials the engine directly, a loopback engine keeps
// working; with the server back, service resumes without a restart.
func TestEgressThroughSOCKS(t *testing.T) {
	const name = "gpu-box.flm-egress-test.invalid"
	remote := startFake(t, enginefake.Options{Kind: enginefake.VLLM, Addr: "127.0.0.2:0", Models: []enginefake.Model{{Name: "big"}}})
	local := startFake(t, enginefake.Options{Kind: enginefake.VLLM, Models: []enginefake.Model{{Name: "small"}}})
	_, rport, _ := net.SplitHostPort(remote.Addr())
	socks := &egresstest.Server{Hosts: map[string]string{name: "127.0.0.2"}}
	if err := socks.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(socks.Stop)
	d, err := egress.New(egress.Config{Mode: proxyctl.EgressSOCKS5, Endpoint: socks.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	src, key := newMemSource(t)
	src.addEngine("gpu", engine.VLLM, "http://"+net.JoinHostPort(name, rport), "big")
	src.addEngine("here", engine.VLLM, local.URL(), "small")
	p := startProxy(t, src, key, func(o *Options) { o.Egress = d })

	chat := func(model string, stream bool) reply {
		s := "false"
		if stream {
			s = "true"
		}
		return p.do(t, "POST", "/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}],"max_tokens":8,"stream":`+s+`}`, p.auth()...)
	}
	if r := chat("flm://gpu/big", true); r.status != 200 || !strings.Contains(string(r.body), "[DONE]") {
		t.Fatalf("stream through SOCKS: %d %s", r.status, r.body)
	}
	if got := socks.Requests(); len(got) == 0 || got[0] != net.JoinHostPort(name, rport) {
		t.Fatalf("SOCKS server was asked for %v", got)
	}

	socks.Stop()
	before := remote.Connections()
	r := chat("flm://gpu/big", false)
	if r.status != 502 || envelopeOf(t, r) != "egress_unavailable" {
		t.Fatalf("OpenAI family with SOCKS down: %d %s", r.status, r.body)
	}
	for _, leak := range []string{socks.Addr(), name, "127.0.0.2"} {
		if strings.Contains(string(r.body), leak) {
			t.Fatalf("the error tells the client %q: %s", leak, r.body)
		}
	}
	r = p.do(t, "POST", "/v1/messages", `{"model":"flm://gpu/big","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`, p.auth()...)
	var ant struct {
		Type  string `json:"type"`
		Error struct{ Type, Message string }
	}
	if r.status != 502 || json.Unmarshal(r.body, &ant) != nil || ant.Type != "error" || !strings.Contains(ant.Error.Message, "egress") {
		t.Fatalf("Anthropic family with SOCKS down: %d %s", r.status, r.body)
	}
	r = p.do(t, "POST", "/api/chat", `{"model":"flm://gpu/big","stream":false,"messages":[{"role":"user","content":"hi"}]}`, p.auth()...)
	var oll struct{ Error string }
	if r.status != 502 || json.Unmarshal(r.body, &oll) != nil || !strings.Contains(oll.Error, "SOCKS5 egress is unavailable") {
		t.Fatalf("Ollama family with SOCKS down: %d %s", r.status, r.body)
	}
	if r := chat("flm://here/small", true); r.status != 200 {
		t.Fatalf("loopback engine during the outage: %d %s", r.status, r.body)
	}
	if n := remote.Connections() - before; n != 0 {
		t.Fatalf("the remote engine was dialed directly %d time(s) during the outage", n)
	}

	if err := socks.Start(); err != nil {
		t.Fatal(err)
	}
	if r := chat("flm://gpu/big", false); r.status != 200 {
		t.Fatalf("after the SOCKS server came back: %d %s", r.status, r.body)
	}
	if remote.Connections() == before {
		t.Fatal("after recovery the engine saw no connection")
	}
}

// TestOnionRefusedDirect: a .onion engine in direct mode gets a clear 502,
// never a lookup of the onion name.
func TestOnionRefusedDirect(t *testing.T) {
	d, _ := egress.New(egress.Config{Mode: proxyctl.EgressDirect})
	src, key := newMemSource(t)
	src.addEngine("hidden", engine.VLLM, "http://abcdefghijklmnop.onion:8000", "m")
	p := startProxy(t, src, key, func(o *Options) { o.Egress = d })
	r := p.do(t, "POST", "/v1/chat/completions", `{"model":"flm://hidden/m","messages":[{"role":"user","content":"hi"}]}`, p.auth()...)
	if r.status != 502 || envelopeOf(t, r) != "egress_unavailable" || !strings.Contains(string(r.body), "--egress-mode tor") {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}
