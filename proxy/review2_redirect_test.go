package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/unjuno/flm/core/proxyctl"
)

// Review 2 (adversarial): in https-acme mode the HTTP port is the one the
// public name's port 80 reaches (http-01). A browser that types
// http://llm.example.net:PORT/ must land on the certified name, the URL
// `proxy status` prints as external — not on https://localhost:…, i.e. on
// the visitor's own machine (a remote user gets a connection error, or
// worse, whatever listens on their localhost).
func TestReview2ACMERedirectKeepsTheCertifiedDomain(t *testing.T) {
	s := &Server{opts: Options{Config: proxyctl.Config{Mode: proxyctl.HTTPSACME, ACMEDomain: "llm.example.net", Port: 8080, Bind: "0.0.0.0"}}}
	for host, want := range map[string]string{
		"llm.example.net":      "https://llm.example.net:8081/v1/models",
		"llm.example.net:8080": "https://llm.example.net:8081/v1/models",
		"LLM.example.net.":     "https://llm.example.net:8081/v1/models",
		// anything else still goes to localhost (no open redirect)
		"evil.example": "https://localhost:8081/v1/models",
	} {
		req := httptest.NewRequest("GET", "/v1/models", nil)
		req.Host = host
		w := httptest.NewRecorder()
		s.redirectHandler().ServeHTTP(w, req)
		if w.Code != http.StatusPermanentRedirect || w.Header().Get("Location") != want {
			t.Errorf("Host %q → %d %s, want %s", host, w.Code, w.Header().Get("Location"), want)
		}
	}
}
