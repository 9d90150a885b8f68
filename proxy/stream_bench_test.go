package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/policy"
)

// pacedEngine streams n chat chunks and [DONE] the way the engines do:
// headers flushed at once, the first event after ttft, each later one
// after gap, every event its own write and flush.
func pacedEngine(n int, ttft, gap time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		for i := range n + 1 {
			wait := gap
			if i == 0 {
				wait = ttft
			}
			if wait > 0 {
				time.Sleep(wait)
			}
			ev := fmt.Sprintf(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok%d"}}]}`+"\n\n", i)
			if i == n {
				ev = "data: [DONE]\n\n"
			}
			if _, err := io.WriteString(w, ev); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
	}
}

// BenchmarkStreamFirstEvent streams through three targets in turn — the
// engine directly, a bare httputil.ReverseProxy (FlushInterval -1, as in
// tools/bench) and FLM with its whole chain — on kept-alive loopback
// connections, and reports per target the median time from sending the
// request to the first event's arrival, and the share of events that
// arrived in the same HTTP chunk (one write and flush) as another.
// ns/op is the time of one round of the three streams.
func BenchmarkStreamFirstEvent(b *testing.B) {
	const events = 8
	up := httptest.NewServer(pacedEngine(events, 300*time.Microsecond, 100*time.Microsecond))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	// tools/bench's bare proxy (bareProxy in tools/bench/roles.go).
	rp.Transport = &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 90 * time.Second, DisableCompression: true}
	rp.FlushInterval = -1
	bare := httptest.NewServer(rp)
	defer bare.Close()

	src, key := newMemSource(b)
	src.addEngine("e", engine.VLLM, up.URL, "m")
	src.policy, _ = policy.Parse([]byte(`{"ip_whitelist":["127.0.0.1","::1"],"rate_limit":{"rpm":1000000000,"burst":1000000000},"ip_rate_limit":{"rpm":1000000000,"burst":1000000000}}`))
	flm := startProxy(b, src, key)

	body := `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`
	targets := []struct {
		name, url string
		c         *rawClient
		hdr       []string
	}{
		{"direct", up.URL, nil, nil},
		{"bare", bare.URL, nil, nil},
		{"flm", flm.url, nil, []string{"Authorization", "Bearer " + key.Plain}},
	}
	for i := range targets {
		targets[i].c = dialRaw(b, targets[i].url)
	}
	first := make([][]time.Duration, len(targets))
	glued, total, failed := make([]int, len(targets)), make([]int, len(targets)), make([]int, len(targets))
	rounds := 0
	for b.Loop() {
		rounds++
		for i, t := range targets {
			r, err := t.c.post("/v1/chat/completions", body, t.hdr...)
			if err != nil || r.status != 200 {
				// httputil.ReverseProxy now and then drops a response: its
				// transport may still be reading the client's request body
				// when the response begins, which the HTTP/1 server does not
				// support (golang/go#40747). Counted, not fatal; FLM reads
				// the body whole before forwarding it.
				failed[i]++
				if failed[i] > rounds/4+10 {
					b.Fatalf("%s: %v %d", t.name, err, r.status)
				}
				targets[i].c = dialRaw(b, t.url)
				continue
			}
			got := false
			for _, ch := range r.chunks {
				n := len(sseEventsIn(ch.data))
				if n > 0 && !got {
					first[i] = append(first[i], ch.at)
					got = true
				}
				total[i] += n
				if n > 1 {
					glued[i] += n - 1
				}
			}
		}
	}
	med := func(xs []time.Duration) float64 {
		slices.Sort(xs)
		return float64(xs[len(xs)/2].Nanoseconds()) / 1e3
	}
	for i, t := range targets {
		b.ReportMetric(med(first[i]), t.name+"-first-µs")
		b.ReportMetric(100*float64(glued[i])/float64(max(1, total[i])), t.name+"-glued-%")
		if failed[i] > 0 {
			b.ReportMetric(float64(failed[i]), t.name+"-failed")
		}
	}
}
