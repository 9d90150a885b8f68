package proxy

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// panicSink panics on its first write (a store or driver bug), then works.
type panicSink struct {
	mu     sync.Mutex
	calls  int
	events []AuditEvent
}

func (p *panicSink) Audit(_ context.Context, evs []AuditEvent) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.calls == 1 {
		panic("sink exploded")
	}
	p.events = append(p.events, evs...)
	return nil
}

func (p *panicSink) written() []AuditEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]AuditEvent(nil), p.events...)
}

// A panic in the audit writer loses that flush's events (counted and
// logged), not the proxy: the loop goes on and later events are written.
func TestAuditWriterPanicDoesNotKillTheLoop(t *testing.T) {
	sink := &panicSink{}
	dropped := 0
	a := newAuditor(sink, func() { dropped++ })
	var logs syncBuffer
	a.log = slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.run(ctx, 20*time.Millisecond) }()

	a.record(AuditEvent{Type: "auth_failure", IP: "192.0.2.1", Detail: "x"})
	a.record(AuditEvent{Type: "ip_blocked", IP: "192.0.2.2", Detail: "y"})
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(logs.String(), "audit writer panicked") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	a.record(AuditEvent{Type: "auth_failure", IP: "192.0.2.3", Detail: "z"})
	for len(sink.written()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if !strings.Contains(logs.String(), "sink exploded") || !strings.Contains(logs.String(), "events=2") {
		t.Fatalf("panic not logged: %q", logs.String())
	}
	if dropped != 2 {
		t.Fatalf("%d events counted dropped, want 2", dropped)
	}
	if evs := sink.written(); len(evs) != 1 || evs[0].IP != "192.0.2.3" {
		t.Fatalf("events after the panic: %+v", evs)
	}
}

// The same through a running proxy: its audit writer panics, the proxy
// keeps answering and keeps auditing.
func TestProxySurvivesAuditPanic(t *testing.T) {
	src, key := newMemSource(t)
	sink := &panicSink{}
	p := startProxy(t, src, key, func(o *Options) { o.Audit = sink; o.AuditEvery = 20 * time.Millisecond })
	p.do(t, "GET", "/v1/models", "", "Authorization", "Bearer nope")
	deadline := time.Now().Add(3 * time.Second)
	for testutil.ToFloat64(p.srv.metrics.auditDropped) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := testutil.ToFloat64(p.srv.metrics.auditDropped); n != 1 {
		t.Fatalf("dropped %v events, want 1", n)
	}
	p.do(t, "GET", "/v1/models", "", "Authorization", "Bearer again")
	for len(sink.written()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if len(sink.written()) != 1 {
		t.Fatal("no audit rows after the writer panicked")
	}
	if r := p.do(t, "GET", "/v1/models", "", p.auth()...); r.status != 200 {
		t.Fatalf("proxy after the audit panic: %d", r.status)
	}
}
