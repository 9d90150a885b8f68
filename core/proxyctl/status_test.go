package proxyctl_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unjuno/flm/core/certs"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/core/proxyctl/proxyctltest"
)

// certFinder answers a certificate per handle id, or an error.
type certFinder struct {
	infos map[string]*certs.Info
	err   error
	calls atomic.Int32
}

func (f *certFinder) Certificate(_ context.Context, h proxyctl.Handle) (*certs.Info, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return f.infos[h.ID], nil
}

// runningTLS registers a healthy fake proxy in mode on port.
func (w *world) runningTLS(t *testing.T, port int, mode proxyctl.Mode) proxyctl.Handle {
	t.Helper()
	cfg := proxyctl.DefaultConfig()
	cfg.Port, cfg.Mode = port, mode
	pid := w.procs.Spawn(proxyctltest.Proc{Port: port, Args: true})
	ctl := proxyctl.Control{Addr: fmt.Sprintf("127.0.0.1:%d", 50000+port), Token: strings.Repeat("7", 64)}
	w.control.Serve(ctl.Addr, ctl.Token, func(_ context.Context, parts proxyctl.Parts) (proxyctl.Applied, error) {
		return proxyctl.Applied{Generation: 1, Parts: parts}, nil
	})
	h, err := w.svc.Register(context.Background(), cfg, proxyctl.Registration{PID: pid, InstanceID: fmt.Sprintf("inst-%d", port), Control: ctl})
	if err != nil {
		t.Fatal(err)
	}
	w.prober.Set(h.URLs.Local, proxyctltest.Health{Instance: h.InstanceID})
	return h
}

func TestStatusShowsCertificates(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	plain, _ := w.running(t, 8080)
	tlsH := w.runningTLS(t, 9000, proxyctl.PackagedCA)
	exp := t0.Add(40 * 24 * time.Hour)
	f := &certFinder{infos: map[string]*certs.Info{tlsH.ID: {ID: certs.LocalCAServerID, Source: certs.SourceLocalCA, NotAfter: exp}}}
	w.svc.Certs = f

	hs, err := w.svc.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]proxyctl.Handle{}
	for _, h := range hs {
		byID[h.ID] = h
	}
	if c := byID[tlsH.ID].Certificate; c == nil || !c.NotAfter.Equal(exp) || c.Source != certs.SourceLocalCA {
		t.Fatalf("TLS proxy certificate = %+v", c)
	}
	if byID[plain.ID].Certificate != nil {
		t.Fatalf("local-http proxy shows a certificate: %+v", byID[plain.ID].Certificate)
	}
	if f.calls.Load() != 1 {
		t.Fatalf("finder asked %d times; only the TLS proxy has a certificate", f.calls.Load())
	}

	// A certificate that cannot be read is named, and the handle stays.
	f.err = errors.New("security.db is locked")
	hs, err = w.svc.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.ID == tlsH.ID && (!h.Running || !strings.Contains(h.LastError, "security.db is locked") || h.Certificate != nil) {
			t.Fatalf("handle with an unreadable certificate = %+v", h)
		}
	}
	if len(hs) != 2 {
		t.Fatalf("Status hid a handle: %d", len(hs))
	}

	// Without a finder, Status is Live.
	w.svc.Certs = nil
	if hs, err := w.svc.Status(ctx); err != nil || len(hs) != 2 || hs[0].Certificate != nil || hs[1].Certificate != nil {
		t.Fatalf("Status without finder = %+v, %v", hs, err)
	}
}
