package proxyctl_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/core/proxyctl/proxyctltest"
)

// world is a Service on fakes: a process table, a handle store, proxies
// that answer /health and their control channels.
type world struct {
	svc      *proxyctl.Service
	handles  *proxyctltest.Handles
	procs    *proxyctltest.Procs
	launcher *proxyctltest.Launcher
	prober   *proxyctltest.Prober
	control  *proxyctltest.Controller
	clock    *proxyctltest.Clock
	ports    *proxyctltest.Ports
	keys     *proxyctltest.Keys
}

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func newWorld() *world {
	w := &world{
		handles: proxyctltest.NewHandles(), procs: proxyctltest.NewProcs(), prober: &proxyctltest.Prober{},
		control: &proxyctltest.Controller{}, clock: proxyctltest.NewClock(t0),
		ports: &proxyctltest.Ports{Busy: map[int]bool{}, Holders: map[int]string{}}, keys: &proxyctltest.Keys{},
	}
	w.launcher = &proxyctltest.Launcher{Procs: w.procs}
	w.svc = &proxyctl.Service{
		Handles: w.handles, Procs: w.procs, Launcher: w.launcher, Prober: w.prober, Control: w.control,
		Keys: keysPort{w.keys}, Ports: portsPort{w.ports}, LAN: proxyctltest.LAN("192.168.1.20"), Clock: w.clock,
	}
	return w
}

// keysPort and portsPort let tests change the fakes after the Service was
// built.
type keysPort struct{ k *proxyctltest.Keys }

func (p keysPort) HasActiveKey(ctx context.Context) (bool, error) { return p.k.HasActiveKey(ctx) }

type portsPort struct{ p *proxyctltest.Ports }

func (p portsPort) Free(ctx context.Context, bind string, port int) error {
	return p.p.Free(ctx, bind, port)
}
func (p portsPort) Holder(ctx context.Context, port int) string { return p.p.Holder(ctx, port) }

// running starts a fake proxy on port: a process, its recorded handle, a
// healthy /health and a control channel whose reloads it counts.
func (w *world) running(t *testing.T, port int) (proxyctl.Handle, *atomic.Int32) {
	t.Helper()
	cfg := proxyctl.DefaultConfig()
	cfg.Port = port
	pid := w.procs.Spawn(proxyctltest.Proc{Port: port, Args: true})
	ctl := proxyctl.Control{Addr: fmt.Sprintf("127.0.0.1:%d", 50000+port), Token: strings.Repeat("7", 64)}
	// The proxy serves before it registers: Register reloads it once.
	var n atomic.Int32
	w.control.Serve(ctl.Addr, ctl.Token, func(_ context.Context, parts proxyctl.Parts) (proxyctl.Applied, error) {
		g := n.Add(1)
		return proxyctl.Applied{Generation: uint64(g), Parts: parts}, nil
	})
	h, err := w.svc.Register(context.Background(), cfg, proxyctl.Registration{PID: pid, InstanceID: fmt.Sprintf("inst-%d", port), Control: ctl})
	if err != nil {
		t.Fatal(err)
	}
	w.prober.Set(h.URLs.Local, proxyctltest.Health{Instance: h.InstanceID})
	n.Store(0)
	return h, &n
}

func code(err error) flmerr.Code { return flmerr.CodeOf(err) }

func TestCheckRefusesInvalidConfigs(t *testing.T) {
	svc := newWorld().svc
	mod := func(f func(*proxyctl.Config)) proxyctl.Config { c := proxyctl.DefaultConfig(); f(&c); return c }
	acme := func(c *proxyctl.Config) { c.Mode, c.ACMEDomain = proxyctl.HTTPSACME, "x.example" }
	for _, c := range []proxyctl.Config{
		mod(func(c *proxyctl.Config) { c.Port = 0 }),
		mod(func(c *proxyctl.Config) { c.Mode = proxyctl.HTTPSACME }), // no domain
		mod(func(c *proxyctl.Config) { acme(c); c.ACMEChallenge = "dns-02" }),
		mod(func(c *proxyctl.Config) { acme(c); c.ACMEChallenge = proxyctl.ChallengeDNS01 }), // no provider
		mod(func(c *proxyctl.Config) { c.Egress.Mode = proxyctl.EgressSOCKS5 }),              // no endpoint
		mod(func(c *proxyctl.Config) {
			acme(c)
			c.ACMEChallenge, c.DNSProvider, c.Egress.Mode = proxyctl.ChallengeDNS01, "cloudflare", proxyctl.EgressTor
		}), // dns-01 would leak around the egress
		mod(func(c *proxyctl.Config) { c.Egress.Mode = "vpn" }),
	} {
		if err := svc.Check(c); code(err) != flmerr.ProxyInvalidConfig {
			t.Errorf("Check(%+v) = %v", c, err)
		}
	}
	for _, c := range []proxyctl.Config{
		mod(func(c *proxyctl.Config) { c.Mode = proxyctl.DevSelfSigned }),
		mod(func(c *proxyctl.Config) { c.Mode = proxyctl.PackagedCA }),
		mod(acme),
		mod(func(c *proxyctl.Config) { acme(c); c.ACMEChallenge, c.DNSProvider = proxyctl.ChallengeDNS01, "exec" }),
		mod(func(c *proxyctl.Config) { c.Egress.Mode = proxyctl.EgressTor }),
	} {
		if err := svc.Check(c); err != nil {
			t.Errorf("Check(%+v) = %v", c, err)
		}
	}
}

func TestPreflight(t *testing.T) {
	ctx := context.Background()
	lan := proxyctl.DefaultConfig()
	lan.Bind, lan.Port = "0.0.0.0", 9000

	t.Run("BeyondLoopbackNeedsAKey", func(t *testing.T) {
		w := newWorld()
		if _, err := w.svc.Preflight(ctx, lan); code(err) != flmerr.ProxyInvalidConfig || !strings.Contains(err.Error(), "create an API key first") {
			t.Fatalf("Preflight = %v", err)
		}
		w.keys.Active = true
		warn, err := w.svc.Preflight(ctx, lan)
		if err != nil || len(warn) != 1 || !strings.Contains(warn[0], "unencrypted") {
			t.Fatalf("with a key: %v %v", warn, err)
		}
		tls := lan
		tls.Mode = proxyctl.DevSelfSigned
		if warn, err := w.svc.Preflight(ctx, tls); err != nil || len(warn) != 0 {
			t.Fatalf("dev-selfsigned on the LAN: %v %v", warn, err)
		}
		w.keys.Err = flmerr.New(flmerr.DBError, "security.db is damaged")
		if _, err := w.svc.Preflight(ctx, lan); code(err) != flmerr.DBError {
			t.Fatalf("a failing key check must refuse, got %v", err)
		}
	})

	t.Run("LoopbackNeedsNoKey", func(t *testing.T) {
		if _, err := newWorld().svc.Preflight(ctx, proxyctl.DefaultConfig()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("PortHeldByAnEngine", func(t *testing.T) {
		w := newWorld()
		w.ports.Busy[8080] = true
		w.ports.Holders[8080] = "llama.cpp (detected at http://127.0.0.1:8080)"
		_, err := w.svc.Preflight(ctx, proxyctl.DefaultConfig())
		if code(err) != flmerr.ProxyPortInUse || err.Error() != "port 8080 is in use by llama.cpp (detected at http://127.0.0.1:8080); choose another with --port" {
			t.Fatalf("Preflight = %v", err)
		}
		tls := proxyctl.DefaultConfig()
		tls.Mode, tls.Port = proxyctl.DevSelfSigned, 8079 // its HTTPS port is 8080
		if _, err := w.svc.Preflight(ctx, tls); code(err) != flmerr.ProxyPortInUse {
			t.Fatalf("port+1 held: %v", err)
		}
	})

	t.Run("AlreadyRunning", func(t *testing.T) {
		w := newWorld()
		h, _ := w.running(t, 8080)
		_, err := w.svc.Preflight(ctx, proxyctl.DefaultConfig())
		if code(err) != flmerr.ProxyAlreadyRun || !strings.Contains(err.Error(), fmt.Sprintf("(proxy-8080, pid %d)", h.PID)) {
			t.Fatalf("Preflight = %v", err)
		}
		tls := proxyctl.DefaultConfig()
		tls.Mode, tls.Port = proxyctl.DevSelfSigned, 8079
		if _, err := w.svc.Preflight(ctx, tls); code(err) != flmerr.ProxyAlreadyRun {
			t.Fatalf("a TLS proxy whose HTTPS port is a running proxy's: %v", err)
		}
		// Once that proxy is dead, the port is free again.
		w.procs.Exit(h.PID)
		if _, err := w.svc.Preflight(ctx, proxyctl.DefaultConfig()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestStartBackground(t *testing.T) {
	ctx := context.Background()
	cfg := proxyctl.DefaultConfig()

	t.Run("ReadyOnceRecordedAndHealthy", func(t *testing.T) {
		w := newWorld()
		// The child records its handle after 200 ms and answers /health
		// after 300 ms.
		var pid int
		w.launcher.Child = func(_ proxyctl.Config, p int) { pid = p }
		w.clock.OnSleep = func(now time.Time) {
			if now.Sub(t0) == 200*time.Millisecond {
				ctl := proxyctl.Control{Addr: "127.0.0.1:50001", Token: strings.Repeat("7", 64)}
				w.control.Serve(ctl.Addr, ctl.Token, func(context.Context, proxyctl.Parts) (proxyctl.Applied, error) { return proxyctl.Applied{}, nil })
				h, err := w.svc.Register(ctx, cfg, proxyctl.Registration{PID: pid, InstanceID: "child", Control: ctl})
				if err != nil {
					t.Error(err)
				}
				w.prober.Set(h.URLs.Local, proxyctltest.Health{Instance: "someone else"})
			}
			if now.Sub(t0) == 300*time.Millisecond {
				w.prober.Set("http://127.0.0.1:8080", proxyctltest.Health{Instance: "child"})
			}
		}
		h, err := w.svc.StartBackground(ctx, cfg)
		if err != nil || h.PID != pid || !h.Running || h.URLs.Local != "http://127.0.0.1:8080" {
			t.Fatalf("StartBackground = %+v, %v", h, err)
		}
		if got := w.clock.Now().Sub(t0); got != 300*time.Millisecond {
			t.Fatalf("ready after %v, want as soon as /health answered as the child (300 ms)", got)
		}
	})

	t.Run("ChildExitsWithItsOwnError", func(t *testing.T) {
		w := newWorld()
		w.launcher.Child = func(c proxyctl.Config, pid int) {
			w.launcher.Die(c, pid, flmerr.DBReadOnly, "config.db is read-only")
		}
		_, err := w.svc.StartBackground(ctx, cfg)
		if code(err) != flmerr.DBReadOnly || err.Error() != "the proxy exited during start: config.db is read-only (log: fake/proxy-8080.log)" {
			t.Fatalf("StartBackground = %v (%s)", err, code(err))
		}
	})

	t.Run("NoAnswerInTimeIsKilled", func(t *testing.T) {
		w := newWorld()
		var pid int
		w.launcher.Child = func(_ proxyctl.Config, p int) { pid = p }
		_, err := w.svc.StartBackground(ctx, cfg)
		if code(err) != flmerr.ProxyInvalidConfig || !strings.Contains(err.Error(), "did not answer /health within 20s") {
			t.Fatalf("StartBackground = %v", err)
		}
		if w.procs.Alive(pid) || !slices.Equal(w.procs.Signals(pid), []proxyctl.Signal{proxyctl.Kill}) {
			t.Fatalf("the silent child was not killed: %v", w.procs.Signals(pid))
		}
		if d := w.clock.Now().Sub(t0); d < 20*time.Second || d > 21*time.Second {
			t.Fatalf("gave up after %v", d)
		}
	})

	t.Run("LaunchError", func(t *testing.T) {
		w := newWorld()
		w.launcher.Err = flmerr.New(flmerr.Internal, "no executable")
		if _, err := w.svc.StartBackground(ctx, cfg); code(err) != flmerr.Internal {
			t.Fatalf("StartBackground = %v", err)
		}
	})
}

func TestNewHandleURLsNeverShowWildcards(t *testing.T) {
	w := newWorld()
	mk := func(bind string, mode proxyctl.Mode) proxyctl.Config {
		c := proxyctl.DefaultConfig()
		c.Bind, c.Mode, c.Port = bind, mode, 9000
		return c
	}
	cases := []struct {
		cfg        proxyctl.Config
		lan        proxyctl.LANFinder
		local, url string
	}{
		{mk("127.0.0.1", proxyctl.LocalHTTP), nil, "http://127.0.0.1:9000", ""},
		{mk("::1", proxyctl.LocalHTTP), nil, "http://[::1]:9000", ""},
		{mk("0.0.0.0", proxyctl.LocalHTTP), proxyctltest.LAN("192.168.1.20"), "http://127.0.0.1:9000", "http://192.168.1.20:9000"},
		{mk("::", proxyctl.DevSelfSigned), proxyctltest.LAN("10.0.0.7"), "https://127.0.0.1:9001", "https://10.0.0.7:9001"},
		{mk("0.0.0.0", proxyctl.LocalHTTP), proxyctltest.LAN(""), "http://127.0.0.1:9000", ""},
		{mk("0.0.0.0", proxyctl.LocalHTTP), nil, "http://127.0.0.1:9000", ""},
		{mk("192.168.1.20", proxyctl.DevSelfSigned), nil, "https://192.168.1.20:9001", "https://192.168.1.20:9001"},
	}
	for _, c := range cases {
		w.svc.LAN = c.lan
		h := w.svc.NewHandle(c.cfg, 42)
		if h.URLs.Local != c.local || h.URLs.LAN != c.url || h.ID != "proxy-9000" || h.PID != 42 || !h.StartedAt.Equal(t0) {
			t.Errorf("%s %s: %+v", c.cfg.Bind, c.cfg.Mode, h)
		}
		if strings.Contains(h.URLs.Local+h.URLs.LAN, "0.0.0.0") || strings.Contains(h.URLs.Local+h.URLs.LAN, "[::]") {
			t.Errorf("a URL shows a wildcard: %+v", h.URLs)
		}
	}
}

// readOnly is a store whose writes fail like a read-only config.db.
type readOnly struct{ *proxyctltest.Handles }

func (readOnly) Remove(context.Context, string) error {
	return flmerr.New(flmerr.DBReadOnly, "config.db is read-only")
}

func TestLiveForgetsDeadAndForeignProcesses(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	healthy, _ := w.running(t, 1001)
	dead, _ := w.running(t, 1002)
	w.procs.Exit(dead.PID)
	// Died without cleanup; its pid now belongs to an unrelated program.
	reused, _ := w.running(t, 1003)
	w.procs.Exit(reused.PID)
	w.prober.Down(reused.URLs.Local)
	other := w.procs.Spawn(proxyctltest.Proc{Port: 0, Args: false})
	reused.PID = other
	if err := w.handles.Save(ctx, reused, proxyctl.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	// Alive, still our proxy (its command line says so), but /health is
	// silent (stopped, overloaded).
	stuck, _ := w.running(t, 1004)
	w.prober.Set(stuck.URLs.Local, proxyctltest.Health{Status: 503})

	live, err := w.svc.Live(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 2 || live[0].ID != healthy.ID || !live[0].Running || live[1].ID != stuck.ID || live[1].Running ||
		live[1].LastError != "the process is alive but /health does not answer" {
		t.Fatalf("Live = %+v", live)
	}
	stored, _ := w.handles.List(ctx)
	if len(stored) != 2 {
		t.Fatalf("the store still has %d handles; dead and foreign ones must be forgotten", len(stored))
	}
	if len(w.procs.Signals(other)) != 0 {
		t.Fatal("the unrelated process was signalled")
	}

	// On a read-only store dead handles are hidden, not an error.
	w2 := newWorld()
	h, _ := w2.running(t, 2000)
	w2.procs.Exit(h.PID)
	w2.svc.Handles = readOnly{w2.handles}
	if live, err := w2.svc.Live(ctx); err != nil || len(live) != 0 {
		t.Fatalf("Live on a read-only store = %+v, %v", live, err)
	}
}

func TestSelect(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	a, _ := w.running(t, 3001)
	w.running(t, 3002)
	for _, sel := range []proxyctl.Selector{{}, {Port: 3001, All: true}, {HandleID: "x", Port: 1}} {
		if _, err := w.svc.Select(ctx, sel); code(err) != flmerr.InvalidArgument {
			t.Errorf("Select(%+v) = %v", sel, err)
		}
	}
	if hs, err := w.svc.Select(ctx, proxyctl.Selector{Port: 3001}); err != nil || len(hs) != 1 || hs[0].ID != a.ID {
		t.Fatalf("by port: %+v %v", hs, err)
	}
	if hs, err := w.svc.Select(ctx, proxyctl.Selector{HandleID: "proxy-3002"}); err != nil || len(hs) != 1 {
		t.Fatalf("by id: %+v %v", hs, err)
	}
	if _, err := w.svc.Select(ctx, proxyctl.Selector{Port: 1}); code(err) != flmerr.ProxyNotRunning {
		t.Fatalf("no match: %v", err)
	}
	if hs, err := newWorld().svc.Select(ctx, proxyctl.Selector{All: true}); err != nil || hs == nil || len(hs) != 0 {
		t.Fatalf("--all of nothing: %#v %v", hs, err)
	}
}

func TestStopGracefulThenKill(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	polite, _ := w.running(t, 4001)
	stuck, _ := w.running(t, 4002)
	// The stuck one ignores SIGTERM.
	w.procs.Exit(stuck.PID)
	stuck.PID = w.procs.Spawn(proxyctltest.Proc{Port: 4002, Args: true, IgnoreTerm: true})
	_ = w.handles.Save(ctx, stuck, proxyctl.DefaultConfig())

	stopped, err := w.svc.Stop(ctx, proxyctl.Selector{All: true})
	if err != nil || !slices.Equal(stopped, []string{"proxy-4001", "proxy-4002"}) {
		t.Fatalf("Stop = %v, %v", stopped, err)
	}
	if s := w.procs.Signals(polite.PID); !slices.Equal(s, []proxyctl.Signal{proxyctl.Terminate}) {
		t.Fatalf("the polite proxy got %v; it must only be asked to stop", s)
	}
	if s := w.procs.Signals(stuck.PID); !slices.Equal(s, []proxyctl.Signal{proxyctl.Terminate, proxyctl.Kill}) || w.procs.Alive(stuck.PID) {
		t.Fatalf("the stuck proxy got %v", s)
	}
	// The kill came only after the grace period.
	if d := w.clock.Now().Sub(t0); d < proxyctl.DefaultStopTimeout {
		t.Fatalf("killed after %v, before the %v grace", d, proxyctl.DefaultStopTimeout)
	}
	if hs, _ := w.handles.List(ctx); len(hs) != 0 {
		t.Fatalf("handles left: %+v", hs)
	}
}

func TestReloadReportsEachProxy(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	a, na := w.running(t, 5001)
	b, _ := w.running(t, 5002)
	w.control.Down(b.Control.Addr) // its control channel does not answer

	res, err := w.svc.Reload(ctx, proxyctl.Selector{All: true}, proxyctl.ReloadAll)
	if err != nil || len(res) != 2 {
		t.Fatalf("Reload = %+v, %v", res, err)
	}
	if !res[0].OK() || res[0].HandleID != a.ID || res[0].Applied.Parts != proxyctl.ReloadAll || na.Load() != 1 {
		t.Fatalf("first = %+v", res[0])
	}
	if res[1].OK() || res[1].HandleID != b.ID || res[1].Code != flmerr.ProxyNotRunning || res[1].Error == "" {
		t.Fatalf("second = %+v", res[1])
	}

	// Apply reaches every live proxy, and only live ones.
	w.procs.Exit(b.PID)
	res, err = w.svc.Apply(ctx, proxyctl.ReloadSecurity)
	if err != nil || len(res) != 1 || !res[0].OK() || res[0].Applied.Parts != proxyctl.ReloadSecurity || na.Load() != 2 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	if res, err := newWorld().svc.Apply(ctx, proxyctl.ReloadAll); err != nil || len(res) != 0 {
		t.Fatalf("Apply with no proxy = %+v, %v", res, err)
	}
	w.handles.Err = errors.New("disk gone")
	if _, err := w.svc.Apply(ctx, proxyctl.ReloadAll); err == nil {
		t.Fatal("Apply hid a store failure")
	}
}

func TestReloadOfAnOlderProxyIsNotConfirmed(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	h, _ := w.running(t, 6001)
	h.Control = proxyctl.Control{}
	_ = w.handles.Save(ctx, h, proxyctl.DefaultConfig())
	res, _ := w.svc.Reload(ctx, proxyctl.Selector{Port: 6001}, proxyctl.ReloadAll)
	if len(res) != 1 || res[0].OK() || !strings.Contains(res[0].Error, "sent SIGHUP") {
		t.Fatalf("Reload = %+v", res)
	}
	if s := w.procs.Signals(h.PID); !slices.Equal(s, []proxyctl.Signal{proxyctl.Hangup}) {
		t.Fatalf("signals = %v", s)
	}
	w.procs.NoHangup = true // Windows
	res, _ = w.svc.Reload(ctx, proxyctl.Selector{Port: 6001}, proxyctl.ReloadAll)
	if res[0].OK() || !strings.Contains(res[0].Error, "cannot be signalled") {
		t.Fatalf("Reload on Windows = %+v", res)
	}
}

// A tampered store must not make flm send the token anywhere but
// loopback.
func TestControlTokenOnlyGoesToLoopback(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	h, n := w.running(t, 7001)
	for _, addr := range []string{"10.0.0.5:80", "example.com:80", "0.0.0.0:80", "127.0.0.1", ""} {
		var sent atomic.Int32
		w.control.Serve(addr, h.Control.Token, func(context.Context, proxyctl.Parts) (proxyctl.Applied, error) {
			sent.Add(1)
			return proxyctl.Applied{}, nil
		})
		evil := h
		evil.Control.Addr = addr
		if addr == "" {
			evil.Control.Token = "" // no control at all: the SIGHUP path
		}
		_ = w.handles.Save(ctx, evil, proxyctl.DefaultConfig())
		res, _ := w.svc.Reload(ctx, proxyctl.Selector{Port: 7001}, proxyctl.ReloadAll)
		if len(res) != 1 || res[0].OK() || sent.Load() != 0 {
			t.Fatalf("control address %q: %+v (sent %d)", addr, res, sent.Load())
		}
	}
	if n.Load() != 0 {
		t.Fatal("the proxy reloaded")
	}
}

// A proxy that is alive but silent (SIGSTOP, overloaded) does not hold up
// a command for the full reload timeout.
func TestReloadOfASilentProxyIsBounded(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	w.svc.SilentReloadTimeout = 100 * time.Millisecond
	h, _ := w.running(t, 8001)
	w.prober.Set(h.URLs.Local, proxyctltest.Health{Status: 503})
	w.control.Serve(h.Control.Addr, h.Control.Token, func(ctx context.Context, _ proxyctl.Parts) (proxyctl.Applied, error) {
		<-ctx.Done()
		return proxyctl.Applied{}, ctx.Err()
	})
	start := time.Now()
	res, err := w.svc.Apply(ctx, proxyctl.ReloadSecurity)
	if err != nil || len(res) != 1 || res[0].OK() || res[0].HandleID != h.ID {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Apply waited %v on a silent proxy", d)
	}
}

// The race of the review: a proxy reads keys while it starts, and only
// later registers its handle. A revoke committed in between finds no proxy
// to reload and returns; the new proxy must not keep accepting the key
// until its next periodic refresh.
func TestRegisterCatchesUpWithChangesMadeWhileStarting(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	cfg := proxyctl.DefaultConfig()
	var stored, enforced atomic.Int32 // versions of the key store
	stored.Store(1)
	ctl := proxyctl.Control{Addr: "127.0.0.1:50080", Token: strings.Repeat("7", 64)}
	var parts []proxyctl.Parts
	w.control.Serve(ctl.Addr, ctl.Token, func(_ context.Context, p proxyctl.Parts) (proxyctl.Applied, error) {
		parts = append(parts, p)
		enforced.Store(stored.Load())
		return proxyctl.Applied{Parts: p}, nil
	})
	// The proxy starts: it reads the store, then serves.
	pid := w.procs.Spawn(proxyctltest.Proc{Port: cfg.Port, Args: true})
	enforced.Store(stored.Load())
	// A revoke commits now, before the handle exists: it reaches nobody.
	stored.Store(2)
	if res, err := w.svc.Apply(ctx, proxyctl.ReloadSecurity); err != nil || len(res) != 0 {
		t.Fatalf("Apply before the handle exists = %+v, %v", res, err)
	}
	h, err := w.svc.Register(ctx, cfg, proxyctl.Registration{PID: pid, InstanceID: "i", Control: ctl})
	if err != nil {
		t.Fatal(err)
	}
	if enforced.Load() != 2 || !slices.Equal(parts, []proxyctl.Parts{proxyctl.ReloadSecurity}) {
		t.Fatalf("after Register the proxy enforces version %d (reloads %v); the revoke stored before it registered was missed", enforced.Load(), parts)
	}
	if hs, _ := w.handles.List(ctx); len(hs) != 1 || hs[0].ID != h.ID {
		t.Fatalf("handles = %+v", hs)
	}

	// A proxy that cannot catch up does not stay registered.
	w2 := newWorld()
	w2.control.Serve(ctl.Addr, ctl.Token, func(context.Context, proxyctl.Parts) (proxyctl.Applied, error) {
		return proxyctl.Applied{}, flmerr.New(flmerr.PolicyInvalid, "load policy: the stored security policy is invalid")
	})
	_, err = w2.svc.Register(ctx, cfg, proxyctl.Registration{PID: pid, InstanceID: "i", Control: ctl})
	if code(err) != flmerr.PolicyInvalid || !strings.Contains(err.Error(), "re-read keys and policy") {
		t.Fatalf("Register with a failing re-read = %v (%s)", err, code(err))
	}
	if hs, _ := w2.handles.List(ctx); len(hs) != 0 {
		t.Fatalf("the handle of a proxy that could not catch up was kept: %+v", hs)
	}
	// Nor does one without a control channel to catch up through.
	for _, bad := range []proxyctl.Control{{}, {Addr: "10.0.0.1:5000", Token: ctl.Token}, {Addr: ctl.Addr}} {
		if _, err := newWorld().svc.Register(ctx, cfg, proxyctl.Registration{PID: pid, InstanceID: "i", Control: bad}); err == nil {
			t.Fatalf("Register with control %+v succeeded", bad)
		}
	}
}

// Where the OS does not tell a process's command line (macOS, Windows), a
// proxy whose /health is slow once must not be forgotten: `api-keys revoke`
// would then skip it and exit 0 while it keeps accepting the key.
func TestLiveNeverForgetsAProxyItCannotDisprove(t *testing.T) {
	ctx := context.Background()

	t.Run("ControlChannelProvesIt", func(t *testing.T) {
		w := newWorld()
		w.procs.Unknown = true
		h, reloads := w.running(t, 9101)
		w.prober.Set(h.URLs.Local, proxyctltest.Health{Hang: true}) // the 2 s probe times out
		res, err := w.svc.Apply(ctx, proxyctl.ReloadSecurity)
		if err != nil || len(res) != 1 || res[0].HandleID != h.ID || !res[0].OK() || reloads.Load() != 1 {
			t.Fatalf("Apply with a slow /health = %+v, %v (reloads %d): the proxy was skipped", res, err, reloads.Load())
		}
		live, err := w.svc.Live(ctx)
		if err != nil || len(live) != 1 || live[0].Running || live[0].LastError != "the process is alive but /health does not answer" {
			t.Fatalf("Live = %+v, %v", live, err)
		}
	})

	t.Run("NothingProvesEitherWay", func(t *testing.T) {
		w := newWorld()
		w.procs.Unknown = true
		w.svc.IdentifyTimeout, w.svc.SilentReloadTimeout = 50*time.Millisecond, 50*time.Millisecond
		h, _ := w.running(t, 9102)
		w.prober.Set(h.URLs.Local, proxyctltest.Health{Status: http.StatusServiceUnavailable})
		w.control.Stall(h.Control.Addr, true)
		live, err := w.svc.Live(ctx)
		if err != nil || len(live) != 1 || live[0].ID != h.ID || live[0].Running || !strings.Contains(live[0].LastError, "does not tell whether it is still this proxy") {
			t.Fatalf("Live = %+v, %v; want the handle kept, not running, saying why", live, err)
		}
		if hs, _ := w.handles.List(ctx); len(hs) != 1 {
			t.Fatal("the handle was removed from the store")
		}
		// A command that changed keys names it instead of exiting as if
		// no proxy ran.
		res, err := w.svc.Apply(ctx, proxyctl.ReloadSecurity)
		if err != nil || len(res) != 1 || res[0].HandleID != h.ID || res[0].OK() || res[0].Code != flmerr.ProxyNotRunning {
			t.Fatalf("Apply = %+v, %v", res, err)
		}
		// It may be another program now: never signalled.
		stopped, err := w.svc.Stop(ctx, proxyctl.Selector{All: true})
		if len(stopped) != 0 || code(err) != flmerr.ProxyNotRunning || !strings.Contains(err.Error(), fmt.Sprint("pid ", h.PID)) {
			t.Fatalf("Stop = %v, %v", stopped, err)
		}
		old := h
		old.Control = proxyctl.Control{} // a proxy of an older flm: SIGHUP would be all it understands
		_ = w.handles.Save(ctx, old, proxyctl.DefaultConfig())
		res, _ = w.svc.Reload(ctx, proxyctl.Selector{All: true}, proxyctl.ReloadAll)
		if len(res) != 1 || res[0].OK() {
			t.Fatalf("Reload = %+v", res)
		}
		if s := w.procs.Signals(h.PID); len(s) != 0 || !w.procs.Alive(h.PID) {
			t.Fatalf("a process that may not be the proxy got %v", s)
		}
	})

	t.Run("ControlChannelDisprovesIt", func(t *testing.T) {
		w := newWorld()
		w.procs.Unknown = true
		gone, _ := w.running(t, 9103)    // died; its pid now runs something else
		foreign, _ := w.running(t, 9104) // its control port now holds another program
		for _, h := range []proxyctl.Handle{gone, foreign} {
			w.prober.Down(h.URLs.Local)
		}
		w.control.Down(gone.Control.Addr)
		w.control.Serve(foreign.Control.Addr, strings.Repeat("1", 64), func(context.Context, proxyctl.Parts) (proxyctl.Applied, error) {
			t.Error("the other program was asked to reload")
			return proxyctl.Applied{}, nil
		})
		live, err := w.svc.Live(ctx)
		if err != nil || len(live) != 0 {
			t.Fatalf("Live = %+v, %v; want both forgotten", live, err)
		}
		if hs, _ := w.handles.List(ctx); len(hs) != 0 {
			t.Fatalf("handles left: %+v", hs)
		}
		for _, h := range []proxyctl.Handle{gone, foreign} {
			if len(w.procs.Signals(h.PID)) != 0 {
				t.Fatal("a process that is not the proxy was signalled")
			}
		}
	})
}
