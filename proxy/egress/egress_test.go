package egress_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/proxy/egress"
	"github.com/unjuno/flm/proxy/egress/egresstest"
)

// remoteName is a name no local resolver knows; only the test SOCKS
// server's own resolver maps it (to 127.0.0.2).
const remoteName = "gpu-box.flm-egress-test.invalid"

// engineOn starts an HTTP server on ip (another loopback address stands in
// for a remote host) and counts the connections it accepts.
func engineOn(t *testing.T, ip string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen on %s (a second loopback address is needed): %v", ip, err)
	}
	var conns atomic.Int64
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "engine saw host %s", r.Host)
	}), ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func port(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	_, p, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// spyResolver counts every DNS lookup that leaves the process's resolver.
type spyResolver struct{ lookups atomic.Int64 }

func (s *spyResolver) dialer() *net.Dialer {
	return &net.Dialer{Timeout: 2 * time.Second, Resolver: &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		s.lookups.Add(1)
		return nil, errors.New("spy: no DNS here")
	}}}
}

func get(t *testing.T, d *egress.Dialer, url string) (string, error) {
	t.Helper()
	tr := d.NewTransport()
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func startSOCKS(t *testing.T, s *egresstest.Server) {
	t.Helper()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
}

func TestLoopbackNeverLooksUp(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.0.0.2": true, "::1": true, "[::1]": true, "::ffff:127.0.0.1": true,
		"localhost": true, "LOCALHOST.": true, "engine.localhost": true,
		"10.0.0.1": false, "192.168.1.2": false, "::2": false, "example.com": false,
		"localhost.example.com": false, "mylocalhost": false, remoteName: false, "abc.onion": false,
	} {
		if got := egress.Loopback(host); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestDNSNotLeaked: the engine's name reaches the SOCKS server as a name
// and the local resolver sees no lookup at all. The spy is proven to work
// by a direct-mode dial of the same name, which does look it up.
func TestDNSNotLeaked(t *testing.T) {
	eng, _ := engineOn(t, "127.0.0.2")
	socks := &egresstest.Server{Hosts: map[string]string{remoteName: "127.0.0.2"}}
	startSOCKS(t, socks)
	spy := &spyResolver{}
	d, err := egress.New(egress.Config{Mode: proxyctl.EgressSOCKS5, Endpoint: socks.Addr(), Direct: spy.dialer()})
	if err != nil {
		t.Fatal(err)
	}
	body, err := get(t, d, "http://"+net.JoinHostPort(remoteName, port(t, eng))+"/")
	if err != nil {
		t.Fatalf("request through SOCKS: %v", err)
	}
	if !strings.Contains(body, remoteName) {
		t.Fatalf("engine answered %q", body)
	}
	if n := spy.lookups.Load(); n != 0 {
		t.Fatalf("the local resolver was asked %d time(s): DNS leak", n)
	}
	if got := socks.Requests(); len(got) != 1 || got[0] != net.JoinHostPort(remoteName, port(t, eng)) {
		t.Fatalf("SOCKS server was asked for %v, want the name unresolved", got)
	}

	direct, _ := egress.New(egress.Config{Mode: proxyctl.EgressDirect, Direct: spy.dialer()})
	if _, err := get(t, direct, "http://"+net.JoinHostPort(remoteName, port(t, eng))+"/"); err == nil {
		t.Fatal("the name resolved locally: the test proves nothing")
	}
	if spy.lookups.Load() == 0 {
		t.Fatal("the spy saw no lookup of a direct dial: it is not wired")
	}
}

// TestFailClosedAndRecovery: with the SOCKS server gone, remote engines
// fail with ErrUnavailable and nothing dials them directly; loopback
// engines still work; the server's return restores service by itself.
func TestFailClosedAndRecovery(t *testing.T) {
	remote, remoteConns := engineOn(t, "127.0.0.2")
	local, _ := engineOn(t, "127.0.0.1")
	socks := &egresstest.Server{Hosts: map[string]string{remoteName: "127.0.0.2"}}
	startSOCKS(t, socks)
	d, err := egress.New(egress.Config{Mode: proxyctl.EgressTor, Endpoint: socks.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	remoteURL := "http://" + net.JoinHostPort(remoteName, port(t, remote)) + "/"
	localURL := "http://" + net.JoinHostPort("localhost", port(t, local)) + "/"
	if _, err := get(t, d, remoteURL); err != nil {
		t.Fatalf("before the outage: %v", err)
	}
	before := remoteConns.Load()

	socks.Stop()
	_, err = get(t, d, remoteURL)
	if !errors.Is(err, egress.ErrUnavailable) {
		t.Fatalf("with SOCKS down: %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), socks.Addr()) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("error %q should name the endpoint and why", err)
	}
	// The remote engine's real address would have answered a direct dial.
	if _, err := get(t, d, "http://"+remote.Listener.Addr().String()+"/"); err != nil {
		t.Fatalf("loopback engine by IP: %v", err)
	}
	if remoteConns.Load() != before+1 {
		t.Fatalf("engine saw %d connection(s) during the outage, want only the deliberate one", remoteConns.Load()-before)
	}
	before = remoteConns.Load()
	if _, err := get(t, d, localURL); err != nil {
		t.Fatalf("loopback engine during the outage: %v", err)
	}

	if err := socks.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := get(t, d, remoteURL); err != nil {
		t.Fatalf("after the SOCKS server came back: %v", err)
	}
	if remoteConns.Load() != before+1 {
		t.Fatal("after recovery the engine was not reached through SOCKS")
	}
}

func TestTargetFailureIsNotEgressFailure(t *testing.T) {
	socks := &egresstest.Server{}
	startSOCKS(t, socks)
	d, _ := egress.New(egress.Config{Mode: proxyctl.EgressSOCKS5, Endpoint: socks.Addr()})
	_, err := d.DialContext(context.Background(), "tcp", "unknown.flm-egress-test.invalid:80")
	var te *egress.TargetError
	if !errors.As(err, &te) || errors.Is(err, egress.ErrUnavailable) {
		t.Fatalf("got %v, want a TargetError (the SOCKS server works)", err)
	}
}

func TestOnion(t *testing.T) {
	d, _ := egress.New(egress.Config{Mode: proxyctl.EgressDirect, Direct: (&spyResolver{}).dialer()})
	if _, err := d.DialContext(context.Background(), "tcp", "abcdefgh.onion:80"); !errors.Is(err, egress.ErrOnionDirect) {
		t.Fatalf("direct .onion: %v, want ErrOnionDirect", err)
	}
	socks := &egresstest.Server{}
	startSOCKS(t, socks)
	spy := &spyResolver{}
	d, _ = egress.New(egress.Config{Mode: proxyctl.EgressTor, Endpoint: socks.Addr(), Direct: spy.dialer()})
	_, _ = d.DialContext(context.Background(), "tcp", "abcdefgh.onion:80")
	if got := socks.Requests(); len(got) != 1 || got[0] != "abcdefgh.onion:80" || spy.lookups.Load() != 0 {
		t.Fatalf("tor .onion: SOCKS saw %v, lookups %d", got, spy.lookups.Load())
	}
}

func TestStartupCheck(t *testing.T) {
	t.Run("three tries then the endpoint is named", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var tries atomic.Int64
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				tries.Add(1)
				_, _ = c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n")) // not SOCKS
				c.Close()
			}
		}()
		d, _ := egress.New(egress.Config{Mode: proxyctl.EgressSOCKS5, Endpoint: ln.Addr().String()})
		err = d.StartupCheck(context.Background(), 10*time.Millisecond)
		if !errors.Is(err, egress.ErrUnavailable) || !strings.Contains(err.Error(), ln.Addr().String()) || !strings.Contains(err.Error(), "SOCKS5") {
			t.Fatalf("got %v", err)
		}
		if n := tries.Load(); n != egress.StartupTries {
			t.Fatalf("%d tries, want %d", n, egress.StartupTries)
		}
	})
	t.Run("handshake only: nothing is connected", func(t *testing.T) {
		socks := &egresstest.Server{}
		startSOCKS(t, socks)
		d, _ := egress.New(egress.Config{Mode: proxyctl.EgressTor, Endpoint: socks.Addr()})
		if err := d.StartupCheck(context.Background(), time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if got := socks.Requests(); len(got) != 0 {
			t.Fatalf("the check asked the server to connect to %v", got)
		}
	})
	t.Run("wrong credentials", func(t *testing.T) {
		socks := &egresstest.Server{User: "flm", Password: "right"}
		startSOCKS(t, socks)
		for _, auth := range []*egress.Auth{nil, {User: "flm", Password: "wrong-secret"}} {
			d, _ := egress.New(egress.Config{Mode: proxyctl.EgressSOCKS5, Endpoint: socks.Addr(), Auth: auth})
			err := d.StartupCheck(context.Background(), time.Millisecond)
			if !errors.Is(err, egress.ErrAuthRefused) || !strings.Contains(err.Error(), egress.EnvUsername) || strings.Contains(err.Error(), "wrong-secret") {
				t.Fatalf("auth %v: got %v", auth != nil, err)
			}
			if _, err := d.DialContext(context.Background(), "tcp", remoteName+":80"); !errors.Is(err, egress.ErrAuthRefused) {
				t.Fatalf("dial with auth %v: %v", auth != nil, err)
			}
		}
		d, _ := egress.New(egress.Config{Mode: proxyctl.EgressSOCKS5, Endpoint: socks.Addr(), Auth: &egress.Auth{User: "flm", Password: "right"}})
		if err := d.StartupCheck(context.Background(), time.Millisecond); err != nil {
			t.Fatalf("right credentials: %v", err)
		}
	})
}

func TestConfig(t *testing.T) {
	for _, c := range []egress.Config{
		{Mode: proxyctl.EgressSOCKS5},
		{Mode: proxyctl.EgressSOCKS5, Endpoint: "127.0.0.1"},
		{Mode: proxyctl.EgressSOCKS5, Endpoint: "127.0.0.1:0"},
		{Mode: proxyctl.EgressSOCKS5, Endpoint: ":1080"},
		{Mode: "vpn"},
	} {
		if _, err := egress.New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	d, err := egress.New(egress.Config{Mode: proxyctl.EgressTor})
	if err != nil || d.Endpoint() != egress.DefaultTorEndpoint {
		t.Fatalf("tor default: %v %q", err, d.Endpoint())
	}
	env := map[string]string{egress.EnvUsername: "u"}
	if _, err := egress.AuthFromEnv(func(k string) string { return env[k] }); err == nil {
		t.Fatal("a user name without password was accepted")
	}
	env[egress.EnvPassword] = "s3cret-pw"
	a, err := egress.AuthFromEnv(func(k string) string { return env[k] })
	if err != nil || a.User != "u" || strings.Contains(fmt.Sprintf("%v %+v %#v %s", a, a, a, *a), "s3cret-pw") {
		t.Fatalf("AuthFromEnv: %v; or the password shows when printed", err)
	}
}

// TestMicrosocks goes through a real SOCKS5 server (Debian's microsocks,
// installed by tools/test.sh). It resolves names with the system resolver,
// so the "remote" engine is named by a spelling of 127.0.0.2 that only
// inet_aton understands (Go parses no such literal and never resolves
// it): the name reaches microsocks unresolved, microsocks connects to
// 127.0.0.2, and its log shows the connection.
func TestMicrosocks(t *testing.T) {
	bin, err := exec.LookPath("microsocks")
	if err != nil {
		t.Fatal("microsocks is not installed (tools/test.sh installs it: apt-get install microsocks)")
	}
	eng, conns := engineOn(t, "127.0.0.2")
	const name = "2130706434" // 127.0.0.2 as one 32-bit number
	if egress.Loopback(name) {
		t.Fatal("the name is taken for loopback: the test would bypass SOCKS")
	}
	for _, creds := range []bool{false, true} {
		ms := startMicrosocks(t, bin, creds)
		auth := (*egress.Auth)(nil)
		if creds {
			auth = &egress.Auth{User: "flm", Password: "pw-right"}
			bad, _ := egress.New(egress.Config{Mode: proxyctl.EgressSOCKS5, Endpoint: ms.addr, Auth: &egress.Auth{User: "flm", Password: "pw-wrong"}})
			if err := bad.StartupCheck(context.Background(), time.Millisecond); !errors.Is(err, egress.ErrAuthRefused) {
				t.Fatalf("microsocks, wrong credentials: %v", err)
			}
		}
		spy := &spyResolver{}
		d, err := egress.New(egress.Config{Mode: proxyctl.EgressSOCKS5, Endpoint: ms.addr, Auth: auth, Direct: spy.dialer()})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.StartupCheck(context.Background(), 50*time.Millisecond); err != nil {
			t.Fatalf("start-up check against microsocks: %v", err)
		}
		before := conns.Load()
		if _, err := get(t, d, "http://"+net.JoinHostPort(name, port(t, eng))+"/"); err != nil {
			t.Fatalf("request through microsocks: %v", err)
		}
		if conns.Load() != before+1 || spy.lookups.Load() != 0 {
			t.Fatalf("engine connections %d, local lookups %d", conns.Load()-before, spy.lookups.Load())
		}
		// microsocks logs the destination as asked: the name, unresolved.
		if want := "connected to " + name + ":" + port(t, eng); !ms.waitLog(want) {
			t.Fatalf("microsocks' log lacks %q:\n%s", want, ms.log())
		}
	}
}

type microsocks struct {
	addr string
	mu   sync.Mutex
	out  strings.Builder
}

func (m *microsocks) log() string { m.mu.Lock(); defer m.mu.Unlock(); return m.out.String() }

func (m *microsocks) waitLog(s string) bool {
	for range 100 {
		if strings.Contains(m.log(), s) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func startMicrosocks(t *testing.T, bin string, creds bool) *microsocks {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	args := []string{"-i", "127.0.0.1", "-p", strconv.Itoa(p)}
	if creds {
		args = append(args, "-u", "flm", "-P", "pw-right")
	}
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &microsocks{addr: ln.Addr().String()}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			m.mu.Lock()
			m.out.WriteString(sc.Text() + "\n")
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for range 100 {
		if c, err := net.Dial("tcp", m.addr); err == nil {
			c.Close()
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("microsocks did not listen on %s", m.addr)
	return nil
}
