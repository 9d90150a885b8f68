package enginetest

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
)

// hostileBudget bounds each probe as the Detector's run budget would.
const hostileBudget = 1500 * time.Millisecond

// RunHostile checks that drv never takes a server that is not its engine
// for a running engine, and that no server can make it hang or read
// without bound: HTML, {}, JSON arrays, 50 MB bodies, invalid UTF-8,
// redirect loops, TLS on a plain-HTTP URL, HTTP 500, a closed port, a port
// that accepts and never answers, and a server that trickles bytes.
func RunHostile(t *testing.T, drv engine.Driver) {
	handler := func(status int, ctype string, body []byte) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			w.WriteHeader(status)
			_, _ = w.Write(body)
		})
	}
	huge := append([]byte(`{"version":"1","models":[],"data":[],"status":"ok","x":"`), bytes.Repeat([]byte("a"), 50<<20)...)
	cases := map[string]http.Handler{
		"html":          handler(200, "text/html", []byte("<html><body>It works!</body></html>")),
		"empty object":  handler(200, "application/json", []byte(`{}`)),
		"json array":    handler(200, "application/json", []byte(`[{"version":"1"},{"status":"ok"}]`)),
		"50 MB body":    handler(200, "application/json", huge),
		"invalid utf-8": handler(200, "application/json", []byte("{\"version\":\"\xff\xfe\",\"status\":\"\xff\",\"models\":[],\"data\":[{\"id\":\"\xff\",\"owned_by\":\"vllm\"}],\"lmstudio\":true}")),
		"http 500":      handler(500, "application/json", []byte(`{"error":"boom"}`)),
		"redirect loop": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, r.URL.Path, http.StatusFound) }),
		"trickle": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			for i := 0; i < 100 && r.Context().Err() == nil; i++ {
				_, _ = w.Write([]byte(" "))
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
		}),
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			expectRefused(t, drv, srv.URL)
		})
	}
	t.Run("tls on a plain url", func(t *testing.T) {
		srv := httptest.NewTLSServer(handler(200, "application/json", []byte(`{"version":"1","status":"ok"}`)))
		defer srv.Close()
		expectRefused(t, drv, strings.Replace(srv.URL, "https://", "http://", 1))
	})
	t.Run("closed port", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if o := expectRefused(t, drv, "http://"+addr); o.Outcome != engine.OutcomeNetwork {
			t.Fatalf("closed port: outcome %s, want network", o.Outcome)
		}
	})
	t.Run("black hole", func(t *testing.T) {
		addr := BlackHole(t)
		if o := expectRefused(t, drv, "http://"+addr); o.Outcome != engine.OutcomeNetwork {
			t.Fatalf("black hole: outcome %s, want network", o.Outcome)
		}
	})
}

func expectRefused(t *testing.T, drv engine.Driver, url string) engine.Observation {
	t.Helper()
	ep := engine.Endpoint{ID: "x", Kind: drv.Kind(), BaseURL: url}
	ctx, cancel := context.WithTimeout(context.Background(), hostileBudget)
	defer cancel()
	start := time.Now()
	o := drv.Probe(ctx, ep)
	if el := time.Since(start); el > hostileBudget+time.Second {
		t.Errorf("Probe took %v with a %v deadline", el, hostileBudget)
	}
	if o.Outcome == engine.OutcomeOK || o.Outcome == engine.OutcomeBusy {
		t.Errorf("Probe of a hostile server = %s (%s); it must never look like a running engine", o.Outcome, o.Reason)
	}
	if o.Reason == "" {
		t.Errorf("outcome %s without a reason", o.Outcome)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), hostileBudget)
	defer cancel2()
	models, err := drv.Models(ctx2, ep)
	if err == nil {
		t.Errorf("Models of a hostile server = %v, want an error", models)
	} else if c := flmerr.CodeOf(err); c != flmerr.EngineAPIError && c != flmerr.EngineNetworkError && c != flmerr.EngineTimeout {
		t.Errorf("Models error code %s (%v), want an ENGINE_* code", c, err)
	}
	return o
}

// BlackHole listens on a loopback port that accepts connections and never
// answers, until the test ends; it returns host:port.
func BlackHole(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return ln.Addr().String()
}
