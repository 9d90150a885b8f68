package egress_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/proxy/egress"
	"github.com/unjuno/flm/proxy/egress/egresstest"
)

// Review 2 (adversarial): host spellings an attacker-chosen engine URL may
// use. In SOCKS mode none of them may be looked up locally (they all reach
// the SOCKS server as written); in direct mode no spelling of a .onion
// name may reach the local resolver.
func TestReview2HostSpellingsNeverLeak(t *testing.T) {
	socks := &egresstest.Server{Hosts: map[string]string{}}
	startSOCKS(t, socks)
	spy := &spyResolver{}
	d, err := egress.New(egress.Config{Mode: proxyctl.EgressSOCKS5, Endpoint: socks.Addr(), Direct: spy.dialer()})
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{
		"2130706433", "0x7f.1", "0177.0.0.1", "127.1", "127.0.0.1.nip.io", "localtest.me",
		"localhost.evil.example", "LOCALHOST.evil.example.", "abc.onion.", "ABC.ONION", "xn--bcher-kva.example",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		c, _ := d.DialContext(ctx, "tcp", net.JoinHostPort(host, "80"))
		cancel()
		if c != nil {
			c.Close()
		}
		if n := spy.lookups.Swap(0); n != 0 {
			t.Errorf("socks5 mode: %q was looked up locally %d time(s)", host, n)
		}
	}

	direct, _ := egress.New(egress.Config{Mode: proxyctl.EgressDirect, Direct: spy.dialer()})
	for _, host := range []string{"abc.onion", "ABC.ONION", "abc.onion.", "abc.OnIoN."} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := direct.DialContext(ctx, "tcp", net.JoinHostPort(host, "80"))
		cancel()
		if !errors.Is(err, egress.ErrOnionDirect) {
			t.Errorf("direct mode %q: %v, want ErrOnionDirect", host, err)
		}
		if n := spy.lookups.Swap(0); n != 0 {
			t.Errorf("direct mode: %q was looked up locally", host)
		}
	}
}
