package proxyctltest

import (
	"context"
	"fmt"
	"testing"

	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
)

// The fakes keep the contracts the real adapters keep.

func TestHandlesConformance(t *testing.T) {
	RunHandleStore(t, func(*testing.T) proxyctl.HandleStore { return NewHandles() })
}

func TestProcsConformance(t *testing.T) {
	p := NewProcs()
	RunProcesses(t, p, func(_ *testing.T, port int) int { return p.Spawn(Proc{Port: port, Args: true}) })
}

func TestLauncherConformance(t *testing.T) {
	p := NewProcs()
	failing := proxyctl.DefaultConfig()
	failing.Port = 9999
	l := &Launcher{Procs: p}
	l.Child = func(cfg proxyctl.Config, pid int) {
		if cfg.Port == failing.Port {
			l.Die(cfg, pid, flmerr.ProxyPortInUse, "cannot listen on port 9999")
		}
	}
	RunLauncher(t, l, p, proxyctl.DefaultConfig(), failing, flmerr.ProxyPortInUse)
}

func TestProberConformance(t *testing.T) {
	p := &Prober{}
	n := 0
	RunProber(t, p, func(_ *testing.T, h Health) proxyctl.Handle {
		n++
		url := fmt.Sprintf("http://127.0.0.1:%d", 30000+n)
		p.Set(url, h)
		return proxyctl.Handle{ID: "proxy-test", URLs: proxyctl.URLs{Local: url}, InstanceID: h.Instance}
	})
}

func TestControllerConformance(t *testing.T) {
	c := &Controller{}
	n := 0
	serve := func(_ *testing.T, token string, reload proxyctl.ReloadFunc) proxyctl.Handle {
		n++
		addr := fmt.Sprintf("127.0.0.1:%d", 40000+n)
		c.Serve(addr, token, reload)
		return proxyctl.Handle{ID: "proxy-test", Control: proxyctl.Control{Addr: addr, Token: token}}
	}
	RunController(t, c, serve, func(t *testing.T, token string) proxyctl.Handle {
		h := serve(t, token, func(context.Context, proxyctl.Parts) (proxyctl.Applied, error) {
			t.Error("a stalled channel reloaded")
			return proxyctl.Applied{}, nil
		})
		c.Stall(h.Control.Addr, true)
		return h
	})
}
