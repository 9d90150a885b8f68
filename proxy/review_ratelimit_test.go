package proxy

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/unjuno/flm/core/policy"
)

// The attack: a host with a /48 sends every request from a fresh /64
// (65,536 of them), before any key is checked. Grouping by /64 gave each
// a fresh 100-request burst; now the site's /48 is capped at 16 × the
// per-IP budget and the rest are refused with the 429 of the bucket that
// refused them.
func TestReviewAttackIPv6SubnetRotation(t *testing.T) {
	h, _ := newHandlerProxy(t, policy.Policy{})
	freeze(h.srv)
	const n = 3000
	passed := 0
	var last int
	for i := range n {
		peer := fmt.Sprintf("[2001:db8:aa:%x%02x::1]:4000", i>>8&0xff, i&0xff)
		w := h.get("/v1/models", peer)
		switch w.Code {
		case http.StatusTooManyRequests:
			last = i
			if w.Header().Get("X-RateLimit-Limit") != "1600" || w.Header().Get("Retry-After") == "" {
				t.Fatalf("429 headers %v", w.Header())
			}
		case http.StatusUnauthorized: // through the limiter, then refused for want of a key
			passed++
		default:
			t.Fatalf("request %d from %s = %d", i, peer, w.Code)
		}
	}
	if want := 16 * defaultIPLimit.Burst; passed != want {
		t.Fatalf("%d of %d requests from fresh /64s of one /48 passed the per-IP limit, want %d", passed, n, want)
	}
	if last != n-1 {
		t.Fatalf("the last refusal was request %d", last)
	}
	// A client of another site is not affected.
	if w := h.get("/v1/models", "[2001:db8:bb::1]:4000"); w.Code != http.StatusUnauthorized {
		t.Fatalf("another /48 = %d", w.Code)
	}
}

// The attack on memory: fresh /48s, one request each. The per-IP limiter
// holds at most its cap of buckets; once full, new clients share one
// overflow bucket and are refused when it is empty, while a client that
// was there before the flood keeps its own bucket.
func TestReviewAttackIPLimiterFloodFailsClosed(t *testing.T) {
	h, _ := newHandlerProxy(t, policy.Policy{})
	h.srv.ipLimit.MaxBuckets = 640
	freeze(h.srv)
	const regular = "198.51.100.7:4000"
	for range 5 {
		if w := h.get("/v1/models", regular); w.Code != http.StatusUnauthorized {
			t.Fatalf("regular client = %d", w.Code)
		}
	}
	const n = 20000
	passed := 0
	for i := range n {
		w := h.get("/v1/models", fmt.Sprintf("[2001:%x:%x::1]:4000", i>>16+0x100, i&0xffff))
		if w.Code != http.StatusTooManyRequests {
			passed++
		}
	}
	if got := h.srv.ipLimit.Len(); got > 640 {
		t.Fatalf("the flood left %d buckets, cap 640", got)
	}
	if max := 640/3 + defaultIPLimit.Burst; passed > max {
		t.Fatalf("%d of %d fresh /48s passed; want at most %d", passed, n, max)
	}
	// New clients during the flood: only as many as the table has room
	// for get a bucket of their own (a flood of IPv6 requests, three
	// buckets each, leaves a shard up to two); the rest are refused by
	// the empty shared bucket.
	room := 640 - h.srv.ipLimit.Len()
	refused := 0
	for i := range 100 {
		w := h.get("/v1/models", fmt.Sprintf("192.0.2.%d:4000", i))
		if w.Code == http.StatusTooManyRequests {
			refused++
			if w.Header().Get("X-RateLimit-Limit") != "100" || w.Header().Get("Retry-After") == "" {
				t.Fatalf("429 headers %v", w.Header())
			}
		}
	}
	if refused < 100-room {
		t.Fatalf("%d of 100 new clients refused during the flood; the table had room for %d", refused, room)
	}
	if w := h.get("/v1/models", regular); w.Code != http.StatusUnauthorized {
		t.Fatalf("the regular client during the flood = %d", w.Code)
	}
}

// freeze stops the per-IP buckets' clock, so no token refills while a
// test floods (on a slow machine, the flood itself takes seconds).
func freeze(s *Server) {
	at := time.Now()
	s.ipLimit.Now = func() time.Time { return at }
}
