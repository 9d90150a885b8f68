package proxy

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

// An audit writer that panics is reported in the proxy's own log (the one
// the operator configured), not in the process-wide default logger.
func TestReviewAuditPanicGoesToProxyLog(t *testing.T) {
	src, key := newMemSource(t)
	var logs syncBuffer
	p := startProxy(t, src, key, func(o *Options) {
		o.Audit = &panicSink{}
		o.AuditEvery = 20 * time.Millisecond
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	p.do(t, "GET", "/v1/models", "", "Authorization", "Bearer nope")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "audit writer panicked") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "audit writer panicked") || !strings.Contains(logs.String(), "sink exploded") {
		t.Fatalf("the audit panic is not in the proxy's log: %q", logs.String())
	}
}
