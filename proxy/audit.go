package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// AuditEvent is one security event: an auth failure, a block, a rate
// limit. Never a key, an Authorization header or a prompt.
type AuditEvent struct {
	Type      string // auth_failure, ip_blocked, host_blocked, origin_blocked, rate_limited
	Severity  string // low, medium, high
	IP        string
	Endpoint  string
	RequestID string
	KeyID     string
	Status    int
	// Count is how many such events the row stands for (see auditor).
	Count int
	At    time.Time
	// Detail is a short reason (missing_authorization_header …).
	Detail string
}

// AuditSink stores audit events (security.db audit_logs).
type AuditSink interface {
	Audit(ctx context.Context, events []AuditEvent) error
}

// auditWindow: events of the same type, IP and detail within one window
// become one row with a count, so a flood writes a row a minute, not a row
// a request.
const auditWindow = time.Minute

// auditor collapses events in memory and writes them in the background;
// the request path never waits for the database.
type auditor struct {
	sink   AuditSink
	onDrop func()
	// log reports a failing sink; nil = slog.Default().
	log     *slog.Logger
	mu      sync.Mutex
	pending map[string]*AuditEvent
	order   []string
}

func newAuditor(sink AuditSink, onDrop func()) *auditor {
	return &auditor{sink: sink, onDrop: onDrop, pending: map[string]*AuditEvent{}}
}

// maxPending bounds memory under a flood of distinct IPs.
const maxPending = 4096

func (a *auditor) record(ev AuditEvent) {
	if a == nil || a.sink == nil {
		return
	}
	key := ev.Type + "|" + ev.IP + "|" + ev.Detail + "|" + ev.KeyID + "|" + ev.Endpoint
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.pending[key]; ok {
		p.Count++
		return
	}
	if len(a.pending) >= maxPending {
		a.onDrop()
		return
	}
	ev.Count = 1
	a.pending[key] = &ev
	a.order = append(a.order, key)
}

// run flushes once per window until ctx ends, then a last time. A flush
// that panics (a sink's bug, a driver's) loses its events — counted as
// dropped and logged — and the loop goes on: the audit writer must never
// take the proxy down.
func (a *auditor) run(ctx context.Context, every time.Duration) {
	if a == nil || a.sink == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			a.safeFlush(fctx)
			cancel()
			return
		case <-t.C:
			a.safeFlush(ctx)
		}
	}
}

func (a *auditor) safeFlush(ctx context.Context) {
	n := 0 // events handed to the sink, lost if it panics
	defer func() {
		if r := recover(); r != nil {
			for range n {
				a.onDrop()
			}
			log := a.log
			if log == nil {
				log = slog.Default()
			}
			log.Error("audit writer panicked; events dropped", "events", n, "panic", fmt.Sprint(r))
		}
	}()
	a.flush(ctx, &n)
}

func (a *auditor) flush(ctx context.Context, handed *int) {
	a.mu.Lock()
	if len(a.order) == 0 {
		a.mu.Unlock()
		return
	}
	evs := make([]AuditEvent, 0, len(a.order))
	for _, k := range a.order {
		evs = append(evs, *a.pending[k])
	}
	a.pending = map[string]*AuditEvent{}
	a.order = nil
	a.mu.Unlock()
	*handed = len(evs)
	if err := a.sink.Audit(ctx, evs); err != nil {
		for range evs {
			a.onDrop()
		}
	}
}
